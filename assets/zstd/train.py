#!/usr/bin/env python3
"""Train the record dictionary from records as the store writes them (README.md here).

    python3 train.py /tmp/train.ndjson records-v1.dict     # needs zstandard (pip install zstandard)

The input is what `STORE_BYTES_DUMP` writes (`examples/store_bytes.rs`): each record's JSON
queued and then synced. Trains on the first 5,000 of each and reports the mean compressed size
of the rest, against zstd with no dictionary.
"""

import sys

import zstandard as z

SIZE = 8192
LEVEL = 3


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    lines = open(src, "rb").read().splitlines()
    half = len(lines) // 2
    queued, synced = lines[:half], lines[half:]
    train = queued[:5000] + synced[:5000]
    dictionary = z.train_dictionary(SIZE, train, level=LEVEL)
    with open(dst, "wb") as out:
        out.write(dictionary.as_bytes())
    with_dict = z.ZstdCompressor(level=LEVEL, dict_data=dictionary, write_checksum=False,
                                 write_dict_id=False)
    plain = z.ZstdCompressor(level=LEVEL)
    for name, rest in (("queued", queued[5000:]), ("synced", synced[5000:])):
        raw = sum(map(len, rest)) / len(rest)
        dict_mean = sum(len(with_dict.compress(r)) for r in rest) / len(rest)
        plain_mean = sum(len(plain.compress(r)) for r in rest) / len(rest)
        print(f"{name}: {raw:.0f} B of JSON -> {dict_mean:.0f} B (no dictionary: {plain_mean:.0f} B)")


if __name__ == "__main__":
    main()
