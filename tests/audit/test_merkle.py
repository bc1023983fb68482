"""RFC 6962 hashing and proofs, against Certificate Transparency's published test vectors
(transparency-dev/merkle testonly/constants.go, proof/verify_test.go, compact/range_test.go)
and against a naive implementation written from the RFC's recursive definitions."""

from __future__ import annotations

import base64
import itertools

import pytest

from audit import merkle

LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, proof), 0-based indices.
INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (0, 2, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]),
    (1, 2, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"]),
    (0, 1, []),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# compact/range_test.go TestGetRootHashGolden: leaf i's data is i as two bytes, little-endian.
GOLDEN_ROOTS = {
    10: "VjWMPSYNtCuCNlF/RLnQy6HcwSk6CIipfxm+hettA+4=",
    15: "j4SulYmocFuxdeyp12xXCIgK6PekBcxzAIj4zbQzNEI=",
    16: "c+4Uc6BCMOZf/v3NZK1kqTUJe+bBoFtOhP+P3SayKRE=",
    100: "dUh9hYH88p0CMoHkdr1wC2szbhcLAXOejWpINIooKUY=",
    255: "SmdsuKUqiod3RX2jyF2M6JnbdE4QuTwwipfAowI4/i0=",
}
LEAVES = [merkle.leaf_hash(data) for data in LEAF_INPUTS]


def _hex(hashes: list[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


def test_hasher_vectors() -> None:
    assert merkle.EMPTY_ROOT.hex() == ROOTS[0]
    assert merkle.leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert merkle.leaf_hash(b"L123456").hex() == "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    assert (
        merkle.node_hash(b"N123", b"N456").hex() == "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


@pytest.mark.parametrize("size", range(9))
def test_roots_of_every_size(size: int) -> None:
    assert merkle.root_hash(LEAVES[:size]).hex() == ROOTS[size]
    assert merkle.TreeLevels(LEAVES[:size]).root().hex() == ROOTS[size]
    assert merkle.TreeLevels(LEAVES).root(size).hex() == ROOTS[size]


@pytest.mark.parametrize(("size", "expected"), GOLDEN_ROOTS.items())
def test_golden_roots_of_larger_trees(size: int, expected: str) -> None:
    leaves = [merkle.leaf_hash(bytes([i & 0xFF, (i >> 8) & 0xFF])) for i in range(size)]
    assert base64.b64encode(merkle.root_hash(leaves)).decode() == expected


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_vectors(index: int, size: int, proof: list[str]) -> None:
    assert _hex(merkle.inclusion_proof(LEAVES[:size], index)) == proof
    assert _hex(merkle.TreeLevels(LEAVES).inclusion_proof(index, size)) == proof
    root = bytes.fromhex(ROOTS[size])
    assert merkle.verify_inclusion(LEAVES[index], index, size, [bytes.fromhex(p) for p in proof], root)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_vectors(old: int, new: int, proof: list[str]) -> None:
    assert _hex(merkle.consistency_proof(LEAVES[:new], old)) == proof
    assert _hex(merkle.TreeLevels(LEAVES).consistency_proof(old, new)) == proof
    old_root, new_root = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    assert merkle.verify_consistency(old, new, old_root, new_root, [bytes.fromhex(p) for p in proof])


def test_tampered_inclusion_proofs_are_rejected() -> None:
    """The mutations of transparency-dev's corruptInclusionProof: each must fail."""
    for index, size, hex_proof in INCLUSION:
        proof = [bytes.fromhex(p) for p in hex_proof]
        root, leaf = bytes.fromhex(ROOTS[size]), LEAVES[index]
        bad: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
            (index - 1, size, root, leaf, proof),
            (index + 1, size, root, leaf, proof),
            (index ^ 2, size, root, leaf, proof),
            (index, size * 2, root, leaf, proof),
            (index, size // 2, root, leaf, proof),
            (index, size, root, b"WrongLeaf", proof),
            (index, size, merkle.EMPTY_ROOT, leaf, proof),
            (index, size, root, leaf, [*proof, b""]),
            (index, size, root, leaf, [*proof, root]),
            (index, size, root, leaf, [b"", *proof]),
            (index, size, root, leaf, [root, *proof]),
        ]
        for i in range(len(proof)):
            flipped = list(proof)
            flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
            bad.append((index, size, root, leaf, flipped))
        if proof:
            bad.append((index, size, root, leaf, proof[:-1]))
        for args in bad:
            if args[:2] == (index, size) and args[2:] == (root, leaf, proof):
                continue
            assert not merkle.verify_inclusion(args[3], args[0], args[1], args[4], args[2]), args[:2]


def test_tampered_consistency_proofs_are_rejected() -> None:
    for old, new, hex_proof in CONSISTENCY[1:]:
        proof = [bytes.fromhex(p) for p in hex_proof]
        old_root, new_root = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
        assert not merkle.verify_consistency(old, new, new_root, old_root, proof)
        assert not merkle.verify_consistency(old, new, old_root, new_root, proof[:-1])
        assert not merkle.verify_consistency(old, new, old_root, new_root, [*proof, old_root])
        assert not merkle.verify_consistency(new, old, new_root, old_root, proof)
        for i in range(len(proof)):
            flipped = list(proof)
            flipped[i] = bytes([flipped[i][0] ^ 1]) + flipped[i][1:]
            assert not merkle.verify_consistency(old, new, old_root, new_root, flipped)


# A naive implementation, straight from RFC 6962 §2.1, as the differential oracle. --------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _mth(d: list[bytes]) -> bytes:
    if not d:
        return merkle.EMPTY_ROOT
    if len(d) == 1:
        return merkle.leaf_hash(d[0])
    k = _k(len(d))
    return merkle.node_hash(_mth(d[:k]), _mth(d[k:]))


def _path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*_path(m, d[:k]), _mth(d[k:])]
    return [*_path(m - k, d[k:]), _mth(d[:k])]


def _subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [_mth(d)]
    k = _k(n)
    if m <= k:
        return [*_subproof(m, d[:k], b), _mth(d[k:])]
    return [*_subproof(m - k, d[k:], False), _mth(d[:k])]


def test_differential_against_the_rfc_definitions() -> None:
    data = [f"relais-{i}".encode() for i in range(40)]
    leaves = [merkle.leaf_hash(x) for x in data]
    levels = merkle.TreeLevels(leaves)
    builder = merkle.TreeBuilder()
    for n in range(1, len(data) + 1):
        builder.append(leaves[n - 1])
        expected_root = _mth(data[:n])
        assert builder.root() == expected_root == levels.root(n) == merkle.root_hash(leaves[:n])
        for m in range(n):
            path = _path(m, data[:n])
            assert levels.inclusion_proof(m, n) == path == merkle.inclusion_proof(leaves[:n], m)
            assert merkle.verify_inclusion(leaves[m], m, n, path, expected_root)
            assert not merkle.verify_inclusion(leaves[m], (m + 1) % n, n, path, expected_root) or n == 1
    for old, new in itertools.combinations_with_replacement(range(1, len(data) + 1), 2):
        proof = _subproof(old, data[:new], True)
        assert levels.consistency_proof(old, new) == proof == merkle.consistency_proof(leaves[:new], old)
        assert merkle.verify_consistency(old, new, _mth(data[:old]), _mth(data[:new]), proof)
        if old < new:
            assert not merkle.verify_consistency(old, new, _mth(data[: old + 1]), _mth(data[:new]), proof)


def test_ranges_hashed_apart_join_into_the_same_tree() -> None:
    """The parallel verifier hashes aligned ranges on their own (``compact_range``) and joins
    them (``append_subtree``): every size gives the root of appending leaf by leaf."""
    leaves = [merkle.leaf_hash(str(i).encode()) for i in range(70)]
    for chunk in (1, 4, 16):
        for size in range(71):
            joined = merkle.TreeBuilder()
            for start in range(0, size, chunk):
                for height, node in merkle.compact_range(leaves[start : min(size, start + chunk)]):
                    joined.append_subtree(height, node)
            assert (joined.size, joined.root()) == (size, merkle.root_hash(leaves[:size]))


def test_a_subtree_out_of_alignment_is_refused() -> None:
    builder = merkle.TreeBuilder()
    builder.append(merkle.leaf_hash(b"a"))
    copy = builder.copy()
    with pytest.raises(ValueError):
        builder.append_subtree(1, merkle.leaf_hash(b"b"))
    assert copy.stack() == builder.stack() and builder.size == 1
