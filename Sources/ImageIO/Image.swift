// Placeholder: the image type lands with the codec commit.
