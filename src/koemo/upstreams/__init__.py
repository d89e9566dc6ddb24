"""Foundation-model upstreams for the frozen-upstream probe study (issue 31): audio and text
models loaded frozen by hub id or local directory, each giving the hidden states of every
layer. A layer above `audio/` and `text/` (it reuses their loaders) and below `modeling/`."""
