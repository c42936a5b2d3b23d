"""Dependencies point one way: CLI -> stages -> backends / prompts / data -> io / config. Nothing below the CLI
imports it, and an import inside a function is there for a heavy or optional dependency only (parsed with
`ast`, nothing imported)."""

import ast

from helpers import ROOT

PACKAGE = ROOT / "src" / "xmrc"

# Third-party packages a module may import inside the function that needs them: each is heavy to import
# (seconds, GPU runtimes) or optional (absent from the base environment).
HEAVY_OR_OPTIONAL = {
    "torch",
    "transformers",
    "tokenizers",
    "vllm",
    "captum",
    "lxt",
    "matplotlib",
    "seaborn",
    "lingua",
    "llamafactory",
    "datasets",
    "peft",
    "gguf",
    "sentencepiece",
    "huggingface_hub",
    "openai",
    "httpx",
}

# xmrc modules imported inside a function, each because the module itself imports torch or vLLM at its top:
# (importing module, imported module) -> why.
HEAVY_XMRC = {
    ("xmrc/backends/__init__.py", "xmrc.backends.hf"): "torch and transformers, only when hf is chosen",
    ("xmrc/backends/__init__.py", "xmrc.backends.vllm"): "vllm, only when vllm is chosen",
    ("xmrc/backends/vllm.py", "xmrc.backends.hf"): "torch and transformers (the tokenizer loader)",
    ("xmrc/analysis/layers/inputs.py", "xmrc.backends.hf"): "torch and transformers (the model loader)",
    ("xmrc/analysis/oracle/regeneration.py", "xmrc.backends.hf"): "torch and transformers (generation)",
    ("xmrc/errors/judge.py", "xmrc.backends.vllm"): "vllm, only for the vLLM judge",
    ("xmrc/hub/models.py", "xmrc.backends.hf"): "torch and transformers, for a local chat model's tokenizer",
    ("xmrc/hub/packaged.py", "xmrc.backends.hf"): "torch and transformers (the converted tokenizer's check)",
    ("xmrc/errors/judge.py", "xmrc.errors.label_scoring"): "torch and transformers, only for the hf judge",
    ("xmrc/finetune/compare.py", "xmrc.plots"): "matplotlib, only for the figure (the tables need none)",
}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE.parent).as_posix(), ast.parse(path.read_text(encoding="utf-8"))


def imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0:
        return [node.module]
    return []


def is_cli(name: str) -> bool:
    return name.startswith("xmrc/cli/")


def test_nothing_below_the_cli_imports_it():
    offenders = [
        f"{name}:{node.lineno} imports {module}"
        for name, tree in modules()
        if not is_cli(name) and name != "xmrc/__main__.py"  # `python -m xmrc`
        for node in ast.walk(tree)
        for module in imported(node)
        if module == "xmrc.cli" or module.startswith("xmrc.cli.")
    ]
    assert offenders == []


def function_level_imports():
    for name, tree in modules():
        if is_cli(name):  # the CLI defers domain imports for `xmrc --help`'s start-up time
            continue
        for function in ast.walk(tree):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(function):
                    for module in imported(node):
                        yield name, node.lineno, module


def test_imports_inside_functions_are_of_heavy_or_optional_modules_only():
    unexplained = []
    for name, line, module in function_level_imports():
        if module.startswith("xmrc"):
            if (name, module) not in HEAVY_XMRC:
                unexplained.append(f"{name}:{line} imports {module}")
        elif module.split(".")[0] not in HEAVY_OR_OPTIONAL:
            unexplained.append(f"{name}:{line} imports {module}")
    assert unexplained == []


def test_every_justified_import_still_exists():
    found = {(name, module) for name, _, module in function_level_imports()}
    assert set(HEAVY_XMRC) - found == set()
