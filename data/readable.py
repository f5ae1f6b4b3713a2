"""Datasets of files where one broken file must not end an epoch: the next readable file stands in for it."""


def read_first_readable(paths, index, unreadable, read, errors, skip, name, kind):
    """read(path) for paths[index], or for the next path (wrapping around) that reads without raising `errors`.

    Paths in `unreadable` are passed over; a path that fails goes to skip(path, error), which adds it to
    `unreadable` (and reports it as the dataset sees fit). IndexError for an index out of range; a RuntimeError
    naming the dataset and the kind of file (e.g. "image_folder", "images") when no path of the split reads.
    """
    index = int(index)  # Subset hands over 0-d tensors
    if not 0 <= index < len(paths):
        raise IndexError(index)
    for offset in range(len(paths)):
        path = paths[(index + offset) % len(paths)]
        if path in unreadable:
            continue
        try:
            return read(path)
        except errors as error:
            skip(path, error)
    raise RuntimeError(f"{name}: none of the {len(paths)} {kind} of this split can be read, e.g. {paths[0]}")
