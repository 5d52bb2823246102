//! Offline administration of a card, for `sc-hsm-emulator init`: it drives the card with the
//! same APDUs a host sends (SELECT, INITIALIZE DEVICE, UPDATE BINARY of EF.TokenInfo), so an
//! offline-initialised card is exactly what sc-hsm-tool would have made.

use super::hex;
use super::host::{self, Initialization};
use crate::apdu::tlv;
use crate::card::Card;
use crate::model::{
    objects, MAX_KEY_DOMAINS, OPTION_PKA_AND_PIN, OPTION_PKA_REPLACEABLE,
    OPTION_RESET_RETRY_COUNTER, OPTION_SESSION_PIN, OPTION_TRANSPORT_PIN,
};

/// What `init` sets.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// 16 hex digits, as sc-hsm-tool takes it.
    pub so_pin: String,
    pub pin: String,
    pub label: Option<String>,
    pub dkek_shares: Option<u8>,
    pub pin_retry: u8,
    /// Key domain slots (INITIALIZE tag 97), domain 0 included.
    pub key_domains: Option<u8>,
    /// Key domains to create after initialisation, each with its number of DKEK shares
    /// (0: the card generates the domain's DKEK).
    pub dkek_domains: Vec<(u8, u8)>,
    /// The user PIN is a transport PIN (option `0002`): it must be changed before its first
    /// VERIFY.
    pub transport_pin: bool,
    /// Session PINs (option `0004`): GENERATE SESSION PIN in a secure channel.
    pub session_pin: bool,
    /// Public-key authentication (INITIALIZE tag 93): total keys, keys required.
    pub public_key_auth: Option<(u8, u8)>,
    /// A registered public key may be replaced (option `0008`).
    pub pka_replaceable: bool,
    /// The user PIN and the public keys are both required (option `0010`).
    pub pka_and_pin: bool,
}

fn status_word(response: &[u8]) -> u16 {
    match response {
        [.., a, b] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

impl InitOptions {
    /// The OpenSC wiki's test credentials: user PIN 648219, SO-PIN 3537363231383830, 3 tries,
    /// no label, no DKEK.
    pub fn wiki() -> InitOptions {
        InitOptions {
            so_pin: "3537363231383830".into(),
            pin: "648219".into(),
            label: None,
            dkek_shares: None,
            pin_retry: 3,
            key_domains: None,
            dkek_domains: Vec::new(),
            transport_pin: false,
            session_pin: false,
            public_key_auth: None,
            pka_replaceable: false,
            pka_and_pin: false,
        }
    }

    /// The option bits of INITIALIZE: RESET RETRY COUNTER allowed, and those asked for.
    fn option_bits(&self) -> u16 {
        [
            (true, OPTION_RESET_RETRY_COUNTER),
            (self.transport_pin, OPTION_TRANSPORT_PIN),
            (self.session_pin, OPTION_SESSION_PIN),
            (self.pka_replaceable, OPTION_PKA_REPLACEABLE),
            (self.pka_and_pin, OPTION_PKA_AND_PIN),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .fold(0, |bits, (_, bit)| bits | bit)
    }
}

/// EF.TokenInfo with `label`, as OpenSC writes it: version 0, label `[0]`, flags prnGeneration.
pub fn token_info(label: &str) -> Vec<u8> {
    let mut inner = tlv::encode(0x02, &[0x00]);
    tlv::write(&mut inner, 0x80, label.as_bytes());
    tlv::write(&mut inner, 0x03, &[0x05, 0x20]);
    tlv::encode(0x30, &inner)
}

impl InitOptions {
    /// Checks the options without touching a card; the SO-PIN's bytes. Errors are sentences
    /// for the command line.
    pub fn validate(&self) -> Result<Vec<u8>, String> {
        let so_pin = hex::decode(&self.so_pin)
            .filter(|b| b.len() == 8)
            .ok_or("the SO-PIN must be 16 hexadecimal digits")?;
        if !(6..=16).contains(&self.pin.len()) {
            return Err("the user PIN must have 6 to 16 characters".into());
        }
        if !(1..=15).contains(&self.pin_retry) {
            return Err("the PIN retry counter must be between 1 and 15".into());
        }
        let slots = self.key_domains.unwrap_or(1);
        if !(1..=MAX_KEY_DOMAINS).contains(&slots) {
            return Err(format!(
                "the number of key domains must be between 1 and {MAX_KEY_DOMAINS} (domain 0 included)"
            ));
        }
        if let Some((total, required)) = self.public_key_auth {
            if crate::model::pka::Pka::new(total, required).is_none() {
                return Err(format!(
                    "public-key authentication needs 1 to {} keys and 1 to that many required, not {required} of {total}",
                    crate::model::pka::MAX_KEYS
                ));
            }
        }
        for (i, (kd, _)) in self.dkek_domains.iter().enumerate() {
            if *kd == 0 {
                return Err(
                    "key domain 0 is the default DKEK: set it up with --dkek-shares".into(),
                );
            }
            if *kd >= slots {
                return Err(format!(
                    "key domain {kd} needs --key-domains {} or more",
                    kd + 1
                ));
            }
            if self.dkek_domains[..i].iter().any(|(other, _)| other == kd) {
                return Err(format!("key domain {kd} is named twice"));
            }
        }
        Ok(so_pin)
    }
}

/// Initialises (or re-initialises) `card`. Errors are sentences for the command line.
pub fn initialize(card: &mut Card, options: &InitOptions) -> Result<(), String> {
    let so_pin = options.validate()?;
    let initialization = Initialization {
        options: options.option_bits(),
        user_pin: options.pin.as_bytes(),
        so_pin: &so_pin,
        user_pin_tries: options.pin_retry,
        dkek_shares: options.dkek_shares,
        key_domains: options.key_domains,
        public_keys: options.public_key_auth,
    };
    card.power_on();
    card.transmit(&host::select_application());
    let answer = card.transmit(&initialization.apdu());
    match status_word(&answer) {
        0x9000 => {}
        0x6983 => {
            return Err("the SO-PIN is blocked: this card cannot be initialised again".into())
        }
        sw if sw & 0xFFF0 == 0x63C0 => {
            return Err(format!(
                "wrong SO-PIN for this card ({} tries left)",
                sw & 0x000F
            ))
        }
        0x6581 => return Err("the card database could not be written".into()),
        sw => return Err(format!("INITIALIZE DEVICE refused with {sw:04X}")),
    }
    // Right after INITIALIZE the session may write (as sc-hsm-tool writes EF.TokenInfo): the
    // key domains are created in it, before any VERIFY (a transport PIN would refuse one).
    for (kd, shares) in &options.dkek_domains {
        let answer = card.transmit(&host::manage_key_domain(0x01, *kd, &[*shares]));
        if status_word(&answer) != 0x9000 {
            return Err(format!(
                "creating key domain {kd} failed with {:04X}",
                status_word(&answer)
            ));
        }
    }
    if let Some(label) = &options.label {
        let answer = card.transmit(&host::update_binary(
            objects::EF_TOKEN_INFO,
            &token_info(label),
        ));
        if status_word(&answer) != 0x9000 {
            return Err(format!(
                "writing the label failed with {:04X}",
                status_word(&answer)
            ));
        }
    }
    card.power_off();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> InitOptions {
        InitOptions {
            so_pin: "3537363231383830".into(),
            pin: "648219".into(),
            label: Some("My HSM".into()),
            dkek_shares: Some(2),
            pin_retry: 3,
            key_domains: Some(3),
            dkek_domains: vec![(2, 0)],
            transport_pin: false,
            session_pin: false,
            public_key_auth: None,
            pka_replaceable: false,
            pka_and_pin: false,
        }
    }

    #[test]
    fn token_info_matches_what_opensc_writes() {
        // Read back from a card initialised by `sc-hsm-tool --label "My HSM"`.
        assert_eq!(
            hex::encode(&token_info("My HSM")),
            "300F02010080064D792048534D03020520"
        );
    }

    #[test]
    fn initialize_then_reinitialize_with_the_wrong_so_pin() {
        let mut card = Card::open(Box::new(crate::MemoryStore::default())).unwrap();
        initialize(&mut card, &options()).unwrap();
        assert_eq!(
            card.state().files[&objects::EF_TOKEN_INFO].data,
            token_info("My HSM")
        );
        assert!(matches!(
            card.state().dkek,
            crate::model::dkek::Dkek::Pending { total: 2, .. }
        ));
        assert_eq!(card.state().key_domain_slots(), 3);
        assert!(matches!(
            card.state().domain(2),
            Some(crate::model::dkek::Dkek::Ready { total: 0, .. })
        ));
        assert_eq!(
            card.state().domain(1),
            Some(&crate::model::dkek::Dkek::Absent)
        );
        let wrong = InitOptions {
            so_pin: "0000000000000000".into(),
            ..options()
        };
        assert_eq!(
            initialize(&mut card, &wrong),
            Err("wrong SO-PIN for this card (14 tries left)".into())
        );
        let short = InitOptions {
            so_pin: "1234".into(),
            ..options()
        };
        assert!(initialize(&mut card, &short)
            .unwrap_err()
            .contains("16 hexadecimal"));
        for (domains, slots, message) in [
            (
                vec![(3, 0)],
                Some(3),
                "key domain 3 needs --key-domains 4 or more",
            ),
            (vec![(0, 1)], Some(3), "key domain 0 is the default DKEK"),
            (vec![(1, 0), (1, 2)], Some(3), "key domain 1 is named twice"),
            (vec![], Some(17), "between 1 and 16"),
        ] {
            let bad = InitOptions {
                dkek_domains: domains,
                key_domains: slots,
                ..options()
            };
            let error = bad.validate().unwrap_err();
            assert!(error.contains(message), "{error}");
        }
    }

    #[test]
    fn a_transport_pin_must_be_changed_before_it_verifies() {
        let mut card = Card::open(Box::new(crate::MemoryStore::default())).unwrap();
        let transport = InitOptions {
            transport_pin: true,
            ..InitOptions::wiki()
        };
        initialize(&mut card, &transport).unwrap();
        assert_eq!(card.state().options(), 0x0003);
        card.power_on();
        card.transmit(&host::select_application());
        let verify = card.transmit(&host::verify(crate::model::pin::PinRef::User, b"648219"));
        assert_eq!(verify, [0x69, 0x84]);
        assert_eq!(
            card.state().user_pin.as_ref().map(|p| p.tries_left),
            Some(3)
        );
    }
}
