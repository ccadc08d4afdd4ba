"""Planning: the spec loaded and checked, inputs and templates expanded into the manifest."""
