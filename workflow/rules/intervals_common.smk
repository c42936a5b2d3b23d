# Stage 'intervals' (config key `intervals`, off by default): settings, outputs and targets (included by
# intervals.smk).
INTERVALS = config["intervals"]
INTERVALS_DIR = f"{RESULTS}/tables/intervals"


def interval_tables():
    kinds = ("csv", "md") if INTERVALS["markdown"] else ("csv",)
    names = ("direction_intervals", "paired_differences", "scenario_intervals")
    return [f"{INTERVALS_DIR}/{name}.{kind}" for kind in kinds for name in names]


if INTERVALS["enabled"]:
    EXTRA_TARGETS.extend(interval_tables())
    EXTRA_TARGETS.extend(f"{RESULTS}/figures/intervals_f1_{shots}shot.png" for shots in config["shots"])
