//! The card's own records: `identity` (device CHR, root certificate), `config` (the options
//! and key domain slots of INITIALIZE) and `seed` (a deterministic card's seed and boots).

use crate::apdu::tlv;
use crate::model::{Config, Identity, MAX_KEY_DOMAINS};
use crate::store::version::record::{CONFIG_DOMAINS, CONFIG_OPTIONS};

pub(super) fn encode_identity(identity: &Identity) -> Vec<u8> {
    let mut v = tlv::encode(0x01, identity.device_chr.as_bytes());
    tlv::write(&mut v, 0x02, &identity.root_certificate);
    v
}

pub(super) fn decode_identity(v: &[u8]) -> Option<Identity> {
    Some(Identity {
        device_chr: String::from_utf8(tlv::find(v, 0x01)?.to_vec()).ok()?,
        root_certificate: tlv::find(v, 0x02)?.to_vec(),
    })
}

pub(super) fn encode_config(config: Config) -> Vec<u8> {
    let [hi, lo] = config.options.to_be_bytes();
    match config.key_domains {
        0 | 1 => vec![CONFIG_OPTIONS, hi, lo],
        slots => vec![CONFIG_DOMAINS, hi, lo, slots],
    }
}

pub(super) fn decode_config(v: &[u8]) -> Option<Config> {
    let options = |hi: u8, lo: u8| u16::from_be_bytes([hi, lo]);
    match v {
        [CONFIG_OPTIONS, hi, lo] => Some(Config::with_options(options(*hi, *lo))),
        [CONFIG_DOMAINS, hi, lo, slots @ 2..=MAX_KEY_DOMAINS] => Some(Config {
            options: options(*hi, *lo),
            key_domains: *slots,
        }),
        _ => None,
    }
}

/// A seeded card's record: seed (8) ‖ boots (8).
pub(super) fn encode_seed(seed: u64, boots: u64) -> Vec<u8> {
    [seed.to_be_bytes(), boots.to_be_bytes()].concat()
}

pub(super) fn decode_seed(v: &[u8]) -> Option<(u64, u64)> {
    let (seed, boots) = v.split_at_checked(8)?;
    Some((
        u64::from_be_bytes(seed.try_into().ok()?),
        u64::from_be_bytes(boots.try_into().ok()?),
    ))
}
