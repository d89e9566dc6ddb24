"""KEMDy20 reading (kemdy20), evaluation protocols (splits) and the `koemo prepare` step (prepare).

Submodules are imported on use (`from koemo.dataset.prepare import prepare`) so that importing
the package stays light."""
