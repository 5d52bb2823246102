//! INITIALIZE DEVICE: PINs, options, the DKEK, the key domain slots and public-key
//! authentication (tag 93); every object but the
//! device key and its certificates erased. Without data, `80 50 00 00` reads the card's
//! configuration and version.

use super::Applet;
use super::VERSION;
use crate::apdu::{tlv, Response, Status};
use crate::model::dkek::Dkek;
use crate::model::key::DEVICE_KEY_ID;
use crate::model::objects::EF_DEVICE_CERTIFICATES;
use crate::model::pin::{
    PinRecord, PinRef, DEFAULT_USER_PIN_TRIES, SO_PIN_LENGTH, SO_PIN_TRIES, USER_PIN_LENGTHS,
};
use crate::model::pka::Pka;
use crate::model::{
    Change, Config, MAX_KEY_DOMAINS, OPTION_RESET_RETRY_COUNTER, OPTION_TRANSPORT_PIN,
};

/// The parameters of INITIALIZE DEVICE, syntax checked.
struct InitParams<'a> {
    options: u16,
    user_pin: &'a [u8],
    so_pin: &'a [u8],
    user_pin_tries: u8,
    dkek_shares: Option<u8>,
    key_domains: u8,
    /// Tag 93: public-key authentication, m keys of which n are required.
    pka: Option<Pka>,
}

impl<'a> InitParams<'a> {
    fn parse(data: &'a [u8]) -> Result<InitParams<'a>, Status> {
        let tlvs = tlv::parse_all(data).ok_or(Status::IncorrectData)?;
        let mut options = OPTION_RESET_RETRY_COUNTER;
        let mut user_pin = None;
        let mut so_pin = None;
        let mut user_pin_tries = DEFAULT_USER_PIN_TRIES;
        let mut dkek_shares = None;
        let mut key_domains = 1;
        let mut pka = None;
        for t in tlvs {
            match (t.tag, t.value) {
                (0x80, [hi, lo]) => options = u16::from_be_bytes([*hi, *lo]),
                (0x81, pin) if USER_PIN_LENGTHS.contains(&pin.len()) => user_pin = Some(pin),
                (0x82, pin) if pin.len() == SO_PIN_LENGTH => so_pin = Some(pin),
                (0x91, [n @ 1..=15]) => user_pin_tries = *n,
                (0x92, [n]) => dkek_shares = Some(*n),
                (0x93, [total, required]) => {
                    pka = Some(Pka::new(*total, *required).ok_or(Status::IncorrectData)?)
                }
                // Biometric server AIDs: accepted, unused (the card has no biometric PIN).
                (0x95 | 0x96, _) => {}
                // Key domain slots, domain 0 included; 0 means domain 0 only.
                (0x97, [n @ 0..=MAX_KEY_DOMAINS]) => key_domains = (*n).max(1),
                _ => return Err(Status::IncorrectData),
            }
        }
        Ok(InitParams {
            options,
            user_pin: user_pin.ok_or(Status::IncorrectData)?,
            so_pin: so_pin.ok_or(Status::IncorrectData)?,
            user_pin_tries,
            dkek_shares,
            key_domains,
            pka,
        })
    }
}

impl Applet {
    /// INITIALIZE DEVICE: sets PINs and options and erases every object but the device key
    /// and its certificates. A first initialisation sets the SO-PIN; later ones must present
    /// it (a wrong one costs an SO try).
    pub(super) fn initialize_device(&mut self, data: &[u8]) -> Result<Response, Status> {
        let params = InitParams::parse(data)?;
        let so_record = match self.state.so_pin.clone() {
            Some(_) => self.check_pin(PinRef::So, params.so_pin)?,
            None => PinRecord::new(params.so_pin, SO_PIN_TRIES, self.salt()),
        };
        let user_record = PinRecord::new(params.user_pin, params.user_pin_tries, self.salt())
            .transport(params.options & OPTION_TRANSPORT_PIN != 0);
        let dkek = match params.dkek_shares {
            None => Dkek::Absent,
            Some(n) => self.new_dkek(n),
        };

        let mut batch = vec![
            Change::Config(Some(Config {
                options: params.options,
                key_domains: params.key_domains,
            })),
            Change::Pin(PinRef::So, Some(so_record)),
            Change::Pin(PinRef::User, Some(user_record)),
            Change::Domain(0, dkek),
            // Keys registered before go with the old configuration.
            Change::Pka(params.pka),
        ];
        // Every other key domain goes with the keys.
        let domains = self.state.domains.keys().copied();
        batch.extend(domains.map(|kd| Change::Domain(kd, Dkek::Absent)));
        // Everything but the device key and its certificates goes.
        let files = self.state.files.keys().copied();
        batch.extend(
            files
                .filter(|fid| *fid != EF_DEVICE_CERTIFICATES)
                .map(Change::DeleteFile),
        );
        let keys = self.state.keys.keys().copied();
        batch.extend(
            keys.filter(|id| *id != DEVICE_KEY_ID)
                .map(Change::DeleteKey),
        );
        self.commit(batch)?;
        self.session.session_pin = None;
        self.session.select_application(self.state.user_rule());
        // The session that initialised the card is the user's until the next SELECT: the
        // host writes EF.TokenInfo right after initialisation, before any key is registered.
        self.session.set_verified(PinRef::User, true);
        self.session.keys_by_initialize = true;
        Ok(Response::empty())
    }

    /// `80 50 00 00` without data: the configuration and the version, 8 bytes:
    /// options (2) ‖ user PIN retry counter ‖ key domain slots ‖ major ‖ minor ‖ `00 00`.
    /// CardContact's Java card service reads the version at offsets len-4 and len-3.
    pub(super) fn read_configuration(&self) -> Response {
        let [hi, lo] = self.state.options().to_be_bytes();
        let tries = self.state.user_pin.as_ref().map_or(0, |p| p.max_tries);
        Response::ok(vec![
            hi,
            lo,
            tries,
            self.state.key_domain_slots(),
            VERSION.0,
            VERSION.1,
            0,
            0,
        ])
    }
}
