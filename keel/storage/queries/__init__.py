"""Named queries, one mixin per resource, combined into `keel.storage.tx.Tx`."""
