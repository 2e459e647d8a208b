"""Search: build pruning levels × precisions, measure each on the target backends, choose."""
