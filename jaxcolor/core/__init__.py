"""The bottom layer: error types, image-size parsing and the config base; imports no other layer."""
