"""RFC 6962 (Certificate Transparency) Merkle tree hashing, proofs and their verification.

leaf hash = SHA-256(0x00 || leaf bytes); node hash = SHA-256(0x01 || left || right). The tree
of n leaves splits at k, the largest power of two smaller than n (RFC 6962 §2.1), so a tree
only ever grows on its right and any earlier size is a prefix: that is what lets a third
party holding an old checkpoint check, with a consistency proof, that the log only grew.

Functions take leaf *hashes* (bytes); proofs are lists of node hashes, in the RFC's order.
The verification functions follow RFC 9162 §2.1.3.2 and §2.1.4.2 (the iterative forms), so
they never trust the proof's length or the sizes given beyond what the arithmetic allows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

_sha256 = hashlib.sha256

EMPTY_ROOT = _sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """Merkle tree hash of the given leaf hashes (RFC 6962 MTH)."""
    builder = TreeBuilder()
    for leaf in leaves:
        builder.append(leaf)
    return builder.root()


def _subtree_root(leaves: Sequence[bytes], start: int, end: int) -> bytes:
    builder = TreeBuilder()
    for index in range(start, end):
        builder.append(leaves[index])
    return builder.root()


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path of leaf ``index`` in the tree made of all of ``leaves`` (RFC 6962 PATH)."""
    if not 0 <= index < len(leaves):
        raise ValueError("index de feuille hors de l'arbre")
    return _path(leaves, index, 0, len(leaves))


def _path(leaves: Sequence[bytes], index: int, start: int, end: int) -> list[bytes]:
    n = end - start
    if n == 1:
        return []
    k = _split(n)
    if index - start < k:
        return [*_path(leaves, index, start, start + k), _subtree_root(leaves, start + k, end)]
    return [*_path(leaves, index, start + k, end), _subtree_root(leaves, start, start + k)]


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """Proof that the tree of the first ``old_size`` leaves is a prefix of the whole tree."""
    if not 0 < old_size <= len(leaves):
        raise ValueError("taille d'arbre incohérente")
    if old_size == len(leaves):
        return []
    return _subproof(leaves, old_size, 0, len(leaves), True)


def _subproof(leaves: Sequence[bytes], m: int, start: int, end: int, complete: bool) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if complete else [_subtree_root(leaves, start, end)]
    k = _split(n)
    if m <= k:
        return [*_subproof(leaves, m, start, start + k, complete), _subtree_root(leaves, start + k, end)]
    return [*_subproof(leaves, m - k, start + k, end, False), _subtree_root(leaves, start, start + k)]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` put ``leaf`` at ``index`` of the tree of ``size`` with ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: is the tree (``old_size``, ``old_root``) a prefix of (``new_size``, ``new_root``)?"""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def compact_range(leaves: Sequence[bytes]) -> list[tuple[int, bytes]]:
    """(height, root) of the perfect subtrees ``leaves`` decompose into, left to right.

    What ``TreeBuilder`` holds after appending them one by one, computed level by level
    (one list comprehension per level instead of a stack operation per leaf).
    """
    stack: list[tuple[int, bytes]] = []
    start, size = 0, len(leaves)
    for height in range(size.bit_length() - 1, -1, -1):
        if not size >> height & 1:
            continue
        level = list(leaves[start : start + (1 << height)])
        while len(level) > 1:
            level = [_sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
        stack.append((height, level[0]))
        start += 1 << height
    return stack


class TreeBuilder:
    """Appends leaf hashes one at a time and gives the root at any size, in O(log n) memory.

    Keeps the roots of the perfect subtrees the leaves so far decompose into (a "compact
    range"), which is all the verifier needs to stream a million leaves.
    """

    __slots__ = ("_stack", "size")

    def __init__(self) -> None:
        # (height, hash) of perfect subtrees, left to right, heights strictly decreasing.
        self._stack: list[tuple[int, bytes]] = []
        self.size = 0

    def append(self, leaf: bytes) -> None:
        stack = self._stack
        height, node = 0, leaf
        while stack and stack[-1][0] == height:
            node = node_hash(stack.pop()[1], node)
            height += 1
        stack.append((height, node))
        self.size += 1

    @classmethod
    def from_frontier(cls, size: int, frontier: Sequence[str]) -> TreeBuilder:
        """Resume from ``frontier()``'s output: the perfect subtree roots of a tree of ``size``."""
        builder = cls()
        heights = [bit for bit in range(size.bit_length() - 1, -1, -1) if size >> bit & 1]
        if len(heights) != len(frontier):
            raise ValueError("frontière incohérente avec la taille de l'arbre")
        builder._stack = [(height, bytes.fromhex(node)) for height, node in zip(heights, frontier, strict=True)]
        builder.size = size
        return builder

    def frontier(self) -> list[str]:
        return [node.hex() for _, node in self._stack]

    def stack(self) -> list[tuple[int, bytes]]:
        """The (height, root) of each perfect subtree, left to right."""
        return list(self._stack)

    def copy(self) -> TreeBuilder:
        builder = TreeBuilder()
        builder._stack = list(self._stack)
        builder.size = self.size
        return builder

    def append_subtree(self, height: int, node: bytes) -> None:
        """Append the 2**height leaves whose perfect subtree has root ``node``, at once.

        The tree's size must be a multiple of 2**height: the subtree is then a node of the
        final tree, exactly as if its leaves had been appended one by one.
        """
        if self.size % (1 << height):
            raise ValueError("sous-arbre non aligné sur la taille de l'arbre")
        stack = self._stack
        added = 1 << height
        while stack and stack[-1][0] == height:
            node = node_hash(stack.pop()[1], node)
            height += 1
        stack.append((height, node))
        self.size += added

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node


class TreeLevels:
    """Every level of a tree held in memory, for answering many proofs on one tree.

    Built once from the leaf hashes (about 2n hashes); each proof is then O(log n).
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.size = len(leaves)
        self._levels: list[list[bytes]] = [list(leaves)]
        level = self._levels[0]
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)] + (
                [level[-1]] if len(level) % 2 else []
            )
            self._levels.append(level)

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index]

    def _node(self, start: int, end: int) -> bytes:
        """Root of leaves [start, end); fast when the range is a perfect aligned subtree."""
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            height = n.bit_length() - 1
            return self._levels[height][start >> height]
        k = _split(n)
        return node_hash(self._node(start, start + k), self._node(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        if size == 0:
            return EMPTY_ROOT
        return self._node(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self.size if size is None else size
        if not 0 <= index < size <= self.size:
            raise ValueError("index de feuille hors de l'arbre")
        proof: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            k = _split(end - start)
            if index - start < k:
                proof.append(self._node(start + k, end))
                end = start + k
            else:
                proof.append(self._node(start, start + k))
                start += k
        proof.reverse()
        return proof

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        new_size = self.size if new_size is None else new_size
        if not 0 < old_size <= new_size <= self.size:
            raise ValueError("taille d'arbre incohérente")
        proof: list[bytes] = []
        m, start, end, complete = old_size, 0, new_size, True
        while m != end - start:
            k = _split(end - start)
            if m <= k:
                proof.append(self._node(start + k, end))
                end = start + k
            else:
                proof.append(self._node(start, start + k))
                m -= k
                start += k
                complete = False
        if not complete:
            proof.append(self._node(start, end))
        proof.reverse()
        return proof
