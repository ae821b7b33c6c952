"""Custom voices: the store on disk (shared by replicas) and the checks on uploaded reference audio."""
