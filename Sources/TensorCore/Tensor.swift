// Placeholder: the tensor type lands with the tensor-core commit.
