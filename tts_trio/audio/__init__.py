"""Audio as the server hands it out: PCM formats and WAV framing, encoders, continuous output streams."""
