//! RFC 9162 (Certificate Transparency v2) Merkle tree hashing, with domain separation:
//! leaves are `SHA-256(0x00 || data)`, interior nodes `SHA-256(0x01 || left || right)`, so a
//! leaf can never be passed off as a node or the reverse.
//!
//! [`Frontier`] keeps only the roots of the perfect subtrees of the tree so far (at most
//! log2(n) hashes), so appending a leaf and computing the root are O(log n) and the log never
//! has to re-read old entries to stay current.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// `MTH({})`: the hash of the empty string, the root of an empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The right edge of a Merkle tree: perfect subtree roots, largest (leftmost) first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    /// `(height, root)`; heights strictly decrease.
    nodes: Vec<(u32, Hash)>,
    size: u64,
}

impl Frontier {
    pub fn new() -> Frontier {
        Frontier::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash, merging equal-height subtrees as a binary counter carries.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = (0u32, leaf);
        while let Some(&(height, left)) = self.nodes.last() {
            if height != node.0 {
                break;
            }
            self.nodes.pop();
            node = (height + 1, node_hash(&left, &node.1));
        }
        self.nodes.push(node);
        self.size += 1;
    }

    /// The subtree roots, largest first: with [`Frontier::from_roots`], what the log keeps
    /// so that opening it does not re-read every leaf.
    pub fn roots(&self) -> impl Iterator<Item = &Hash> {
        self.nodes.iter().map(|(_, root)| root)
    }

    /// Rebuilds the frontier of a tree of `size` leaves from its subtree roots (largest
    /// first). The heights follow from `size` (one perfect subtree per set bit), so `None`
    /// when the number of roots does not match it.
    pub fn from_roots(size: u64, roots: &[Hash]) -> Option<Frontier> {
        let heights: Vec<u32> = (0..u64::BITS)
            .rev()
            .filter(|bit| size & (1 << bit) != 0)
            .collect();
        (heights.len() == roots.len()).then(|| Frontier {
            nodes: heights.into_iter().zip(roots.iter().copied()).collect(),
            size,
        })
    }

    /// `MTH(D[0:n])` as RFC 9162 defines it: the subtrees folded from the right.
    pub fn root(&self) -> Hash {
        let mut iter = self.nodes.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// The root over a whole list of leaf hashes (the verifier's independent computation).
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            // k: the largest power of two smaller than n.
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_matches_the_recursive_definition_for_every_size() {
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut f = Frontier::new();
        assert_eq!(f.root(), empty_root());
        for n in 1..=leaves.len() {
            f.push(leaves[n - 1]);
            assert_eq!(f.root(), root_of(&leaves[..n]), "size {n}");
        }
    }

    #[test]
    fn frontier_round_trips_through_its_roots_and_keeps_growing_the_same() {
        let leaves: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut f = Frontier::new();
        for n in 1..=leaves.len() {
            f.push(leaves[n - 1]);
            let roots: Vec<Hash> = f.roots().copied().collect();
            let mut back = Frontier::from_roots(f.size(), &roots).expect("matching roots");
            assert_eq!(back, f, "size {n}");
            if let Some(next) = leaves.get(n) {
                back.push(*next);
                assert_eq!(back.root(), root_of(&leaves[..=n]), "size {}", n + 1);
            }
        }
        // The number of roots must match the size's set bits.
        assert!(Frontier::from_roots(3, &[leaves[0]]).is_none());
        assert!(Frontier::from_roots(4, &[leaves[0], leaves[1]]).is_none());
        assert_eq!(Frontier::from_roots(0, &[]), Some(Frontier::new()));
    }

    #[test]
    fn rfc9162_domain_separation_and_known_vector() {
        // The CT test vector: the root of the empty tree is SHA-256("").
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // RFC 6962/9162 test vectors: leaf hash of the empty string, and the 2-leaf tree of
        // the inputs "" and 0x00.
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let two = node_hash(&leaf_hash(b""), &leaf_hash(&[0x00]));
        assert_eq!(
            hex::encode(two),
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"
        );
        assert_ne!(leaf_hash(&[1; 64]), node_hash(&[1; 32], &[1; 32]));
    }
}
