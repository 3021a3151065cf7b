//! Chain ids: the identity of a stack of layers, as the OCI image spec defines it.

use sha2::{Digest as _, Sha256};

use crate::ids::Digest;

/// The chain ids of a stack of layers given their diff ids, bottom first:
/// `ChainID(L0) = DiffID(L0)` and
/// `ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))`.
/// Element `n` names the filesystem of layers `0..=n` applied in order; the snapshotter
/// keys committed snapshots by it.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => diff_id.clone(),
            Some(parent) => {
                let mut h = Sha256::new();
                h.update(parent.as_str().as_bytes());
                h.update(b" ");
                h.update(diff_id.as_str().as_bytes());
                Digest::from_sha256(h.finalize().as_slice())
            }
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::parse(s).unwrap()
    }

    #[test]
    fn empty_and_single() {
        assert!(chain_ids(&[]).is_empty());
        let a = Digest::of_bytes(b"a");
        assert_eq!(chain_ids(std::slice::from_ref(&a)), vec![a]);
    }

    /// Values computed independently with coreutils:
    /// `printf '%s' "sha256:<a> sha256:<b>" | sha256sum`.
    #[test]
    fn known_values() {
        let l0 = d("sha256:0000000000000000000000000000000000000000000000000000000000000000");
        let l1 = d("sha256:1111111111111111111111111111111111111111111111111111111111111111");
        let l2 = d("sha256:2222222222222222222222222222222222222222222222222222222222222222");
        let ids = chain_ids(&[l0.clone(), l1, l2]);
        assert_eq!(ids[0], l0);
        assert_eq!(ids[1], d(CHAIN_01));
        assert_eq!(ids[2], d(CHAIN_012));
    }

    /// `printf '%s' "sha256:0…0 sha256:1…1" | sha256sum`
    const CHAIN_01: &str =
        "sha256:f94b891e05f6e37c90d87edfd5bb98a02d618a437c35f3a94b3b00e48e894631";
    /// `printf '%s' "sha256:<CHAIN_01> sha256:2…2" | sha256sum`
    const CHAIN_012: &str =
        "sha256:59e1080197dac1c8a7a84c26e489ea200c2cb386337efde7688d47aee4460ed7";

    /// The same rule spelled out with string formatting and [`Digest::of_bytes`].
    #[test]
    fn matches_manual_concatenation() {
        let a = Digest::of_bytes(b"layer a");
        let b = Digest::of_bytes(b"layer b");
        let c = Digest::of_bytes(b"layer c");
        let ab = Digest::of_bytes(format!("{a} {b}").as_bytes());
        let abc = Digest::of_bytes(format!("{ab} {c}").as_bytes());
        assert_eq!(chain_ids(&[a.clone(), b, c]), vec![a, ab, abc]);
    }
}
