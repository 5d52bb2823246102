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
    /// Public-key authentication: configuration and registered keys.
    pub pka: Option<Vec<u8>>,
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
            pka: s.pka.as_ref().map(record::encode_pka),
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
        if let Dkek::Pending { value, .. }
        | Dkek::Ready { value, .. }
        | Dkek::Exchange {
            value: Some(value), ..
        } = dkek
        {
            out.push(value.to_vec());
        }
    }
    for key in s.keys.values() {
        match &key.material {
            KeyMaterial::Ec { scalar, .. } => out.push(scalar.to_vec()),
            KeyMaterial::Rsa(k) => out.extend(rsa::secret_parts(k).iter().map(|s| s.to_vec())),
            KeyMaterial::Aes(k) => out.push(k.as_bytes().to_vec()),
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

/// Whether the card's session counts as the user's (PIN, public keys, or both, as the card's
/// rule says).
pub fn user_authenticated(card: &Card) -> bool {
    card.user_authenticated()
}

/// 7. Without the user authenticated before it, no command changes a key, a private data
///    object, a key domain or the registered public keys, except INITIALIZE (which starts
///    over), IMPORT DKEK SHARE (`80 52 00`, shares need no PIN) and the registration of a
///    public key into a free slot (`80 54 00 00`, open until every slot is taken).
pub fn check_access(
    authenticated: bool,
    before: &Snapshot,
    apdu: &[u8],
    response: &[u8],
    after: &Snapshot,
) -> Result<(), Violation> {
    let ins = apdu.get(1).copied().and_then(Ins::from_code);
    let p1 = apdu.get(2).copied();
    if authenticated || ins == Some(InitializeDevice) {
        return Ok(());
    }
    let private = |s: &Snapshot| -> Vec<(u16, Vec<u8>)> {
        s.files
            .iter()
            .filter(|(fid, _)| (*fid >> 8) as u8 == objects::prefix::PRIVATE_DATA)
            .map(|(fid, data)| (*fid, data.clone()))
            .collect()
    };
    let share_import = ins == Some(ManageKeyDomain) && p1 == Some(0);
    let registration = ins == Some(ManagePublicKeyAuthentication) && p1 == Some(0);
    let changed = if before.keys != after.keys {
        Some("a key")
    } else if private(before) != private(after) {
        Some("a private data object")
    } else if (before.dkek != after.dkek || before.domains != after.domains) && !share_import {
        Some("a key domain")
    } else if before.pka != after.pka && !registration {
        Some("the registered public keys")
    } else {
        None
    };
    match changed {
        Some(what) => Err(Violation(format!(
            "{what} changed without the user authenticated: APDU {} answered {}",
            hex::encode(apdu),
            hex::encode(response)
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_without_the_user_is_caught() {
        let card = Card::open(Box::new(crate::MemoryStore::default())).unwrap();
        let before = Snapshot::of(&card);
        let mut after = before.clone();
        after.keys.insert(1, vec![1]);
        let generate = [0x00, 0x46, 0x01, 0x00];
        assert!(check_access(false, &before, &generate, &[0x90, 0x00], &after).is_err());
        assert!(check_access(true, &before, &generate, &[0x90, 0x00], &after).is_ok());
        let mut registered = before.clone();
        registered.pka = Some(vec![1, 1, 1]);
        let register = [0x80, 0x54, 0x00, 0x00];
        let replace = [0x80, 0x54, 0x01, 0x00];
        assert!(check_access(false, &before, &register, &[0x90, 0x00], &registered).is_ok());
        assert!(check_access(false, &before, &replace, &[0x90, 0x00], &registered).is_err());
    }
}
