//! The invariants every command must keep, checked after each exchange by the fuzz targets
//! and the property tests.

use std::collections::BTreeMap;

use super::{SO_PIN, USER_PIN};
use crate::applet::command::Ins::{self, *};
use crate::card::Card;
use crate::crypto::rsa;
use crate::model::dkek::Dkek;
use crate::model::key::{KeyMaterial, DEVICE_KEY_ID};
use crate::model::objects::{self, EF_DEVICE_CERTIFICATES};
use crate::store::record;
use crate::tools::hex;

/// What the invariants compare before and after a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub user_tries: Option<u8>,
    pub so_tries: Option<u8>,
    pub user_pin: Option<Vec<u8>>,
    pub so_pin: Option<Vec<u8>>,
    pub config: Option<(u16, u8)>,
    pub dkek: Vec<u8>,
    pub domains: BTreeMap<u8, Vec<u8>>,
    pub files: BTreeMap<u16, Vec<u8>>,
    pub keys: BTreeMap<u8, Vec<u8>>,
}

impl Snapshot {
    pub fn of(card: &Card) -> Snapshot {
        let s = card.state();
        Snapshot {
            user_tries: s.user_pin.as_ref().map(|p| p.tries_left),
            so_tries: s.so_pin.as_ref().map(|p| p.tries_left),
            user_pin: s.user_pin.as_ref().map(record::encode_pin),
            so_pin: s.so_pin.as_ref().map(record::encode_pin),
            config: s.config.map(|c| (c.options, c.key_domains)),
            dkek: record::encode_dkek(&s.dkek).to_vec(),
            domains: s
                .domains
                .iter()
                .map(|(kd, d)| (*kd, record::encode_dkek(d).to_vec()))
                .collect(),
            files: s.files.iter().map(|(k, f)| (*k, f.data.clone())).collect(),
            keys: s
                .keys
                .iter()
                .map(|(k, v)| (*k, record::encode_key(v).to_vec()))
                .collect(),
        }
    }

    /// The same snapshot with the retry counters left out.
    fn without_counters(&self) -> Snapshot {
        let strip = |pin: &Option<Vec<u8>>| pin.as_ref().map(|p| [&p[..2], &p[3..]].concat());
        Snapshot {
            user_tries: None,
            so_tries: None,
            user_pin: strip(&self.user_pin),
            so_pin: strip(&self.so_pin),
            ..self.clone()
        }
    }
}

/// Every secret the card holds: PIN values in use, the DKEK of every key domain, private and
/// secret key material.
pub fn secrets(card: &Card) -> Vec<Vec<u8>> {
    let mut out = vec![USER_PIN.to_vec(), SO_PIN.to_vec()];
    let s = card.state();
    for dkek in std::iter::once(&s.dkek).chain(s.domains.values()) {
        if let Dkek::Pending { value, .. } | Dkek::Ready { value, .. } = dkek {
            out.push(value.to_vec());
        }
    }
    for key in s.keys.values() {
        match &key.material {
            KeyMaterial::Ec { scalar, .. } => out.push(scalar.to_vec()),
            KeyMaterial::Rsa(k) => out.extend(rsa::secret_parts(k).iter().map(|s| s.to_vec())),
            KeyMaterial::Aes(k) => out.push(k.to_vec()),
        }
    }
    out
}

/// A broken invariant, with what broke it.
#[derive(Debug)]
pub struct Violation(pub String);

/// Checks the invariants of one exchange.
pub fn check(
    before: &Snapshot,
    secrets_before: &[Vec<u8>],
    apdu: &[u8],
    response: &[u8],
    after: &Snapshot,
) -> Result<(), Violation> {
    let fail = |what: &str| {
        Err(Violation(format!(
            "{what}: APDU {} answered {}",
            hex::encode(apdu),
            hex::encode(response)
        )))
    };
    let (data, sw) = response.split_at(response.len().saturating_sub(2));
    let ins = apdu.get(1).copied().and_then(Ins::from_code);
    let ok = sw == [0x90, 0x00] || sw.first() == Some(&0x61) || sw == [0x62, 0x82];

    // 1. Retry counters rise only through a successful PIN command or (re)initialisation.
    for (old, new) in [
        (before.user_tries, after.user_tries),
        (before.so_tries, after.so_tries),
    ] {
        if let (Some(old), Some(new)) = (old, new) {
            if new > old
                && !(ok
                    && matches!(
                        ins,
                        Some(Verify | ChangeReferenceData | ResetRetryCounter | InitializeDevice)
                    ))
            {
                return fail("a retry counter rose without a correct PIN");
            }
        }
    }
    // 2. Blocked stays blocked: the SO-PIN forever, the user PIN until RESET RETRY COUNTER
    //    or INITIALIZE.
    if before.so_tries == Some(0) && after.so_tries != Some(0) {
        return fail("a blocked SO-PIN was unblocked");
    }
    if before.user_tries == Some(0)
        && after.user_tries != Some(0)
        && !(ok && matches!(ins, Some(ResetRetryCounter | InitializeDevice)))
    {
        return fail("a blocked user PIN was unblocked");
    }
    // 3. No secret in any response (blobs are encrypted, so this holds for WRAP too).
    for secret in secrets_before {
        let window = secret.len().min(32);
        if window >= 6
            && data
                .windows(window)
                .any(|w| secret.windows(window).any(|s| s == w))
        {
            return fail("a response carries a secret");
        }
    }
    // 4. A refused command changes nothing, except the try a wrong PIN costs.
    if !ok {
        if before.without_counters() != after.without_counters() {
            return fail("a refused command changed the card");
        }
        let dropped = |old: Option<u8>, new: Option<u8>| old.zip(new).is_some_and(|(o, n)| o != n);
        let wrong_pin = sw.first() == Some(&0x63);
        if (dropped(before.user_tries, after.user_tries)
            || dropped(before.so_tries, after.so_tries))
            && !wrong_pin
        {
            return fail("a refused command changed a retry counter");
        }
    }
    // 5. The device key and its certificates are always there; a generated key comes with
    //    its CV request in CExx, holding that key's public key.
    if !after.keys.contains_key(&DEVICE_KEY_ID)
        || !after.files.contains_key(&EF_DEVICE_CERTIFICATES)
    {
        return fail("the device key or 2F02 is gone");
    }
    // A non-final part of a chain (CLA bit 10) is acknowledged before anything runs.
    let chained = apdu.first().is_some_and(|cla| cla & 0x10 != 0);
    if ok && ins == Some(GenerateKeyPair) && !chained {
        let id = apdu.get(2).copied().unwrap_or(0);
        let (Some(_), Some(request)) = (
            after.keys.get(&id),
            after.files.get(&objects::certificate_fid(id)),
        ) else {
            return fail("GENERATE left a key without its CV request");
        };
        if request.as_slice() != data && !data.is_empty() {
            return fail("the stored CV request differs from the answer");
        }
    }
    // 6. A generated or derived key is there, of its kind, and answered nothing.
    if ok && matches!(ins, Some(GenerateSymmetricKey | DeriveEcKey)) && !chained {
        let id = apdu
            .get(if ins == Some(DeriveEcKey) { 3 } else { 2 })
            .copied();
        let kind = id.and_then(|id| after.keys.get(&id)).and_then(|k| k.get(3));
        let expected = if ins == Some(DeriveEcKey) { 12 } else { 15 };
        if kind != Some(&expected) || !data.is_empty() {
            return fail("a new key is missing, of the wrong kind, or answered data");
        }
    }
    Ok(())
}
