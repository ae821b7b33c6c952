"""From text to audio items: the service, admission, the pipeline, sentences, parameters and the drain."""
