"""xmrc: the cross-lingual context retrieval study on XQuAD, as a reproducible workflow."""

__version__ = "0.1.0"

# The paper's language order (XQuAD's 12 languages).
LANGUAGES = ("en", "de", "es", "vi", "zh", "hi", "ar", "el", "ro", "ru", "th", "tr")

LANGUAGE_NAMES = {
    "en": "English",
    "de": "German",
    "es": "Spanish",
    "vi": "Vietnamese",
    "zh": "Chinese",
    "hi": "Hindi",
    "ar": "Arabic",
    "el": "Greek",
    "ro": "Romanian",
    "ru": "Russian",
    "th": "Thai",
    "tr": "Turkish",
}
