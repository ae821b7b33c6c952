"""``python -m tts_trio`` is the same as the ``tts-trio`` command."""

from tts_trio.cli import main

if __name__ == "__main__":
    main()
