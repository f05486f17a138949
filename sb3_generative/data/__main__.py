"""``python -m sb3_generative.data`` is ``sb3-generative-data``."""

from sb3_generative.data.cli import main

if __name__ == "__main__":
    main()
