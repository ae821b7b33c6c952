"""``WS /v1/tts/stream``: the protocol (what messages mean) apart from the session (socket I/O)."""
