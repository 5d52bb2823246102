//! INITIALIZE DEVICE: PINs, options and the DKEK set-up; every object but the device key and
//! its certificates erased.

use zeroize::Zeroizing;

use crate::apdu::{tlv, Response, Status};
use crate::card::Card;
use crate::model::dkek::Dkek;
use crate::model::key::DEVICE_KEY_ID;
use crate::model::objects::EF_DEVICE_CERTIFICATES;
use crate::model::pin::{
    PinRecord, PinRef, DEFAULT_USER_PIN_TRIES, SO_PIN_LENGTH, SO_PIN_TRIES, USER_PIN_LENGTHS,
};
use crate::model::{Change, Config, OPTION_RESET_RETRY_COUNTER};

/// The parameters of INITIALIZE DEVICE, syntax checked.
struct InitParams<'a> {
    options: u16,
    user_pin: &'a [u8],
    so_pin: &'a [u8],
    user_pin_tries: u8,
    dkek_shares: Option<u8>,
}

impl<'a> InitParams<'a> {
    fn parse(data: &'a [u8]) -> Result<InitParams<'a>, Status> {
        let tlvs = tlv::parse_all(data).ok_or(Status::IncorrectData)?;
        let mut options = OPTION_RESET_RETRY_COUNTER;
        let mut user_pin = None;
        let mut so_pin = None;
        let mut user_pin_tries = DEFAULT_USER_PIN_TRIES;
        let mut dkek_shares = None;
        for t in tlvs {
            match (t.tag, t.value) {
                (0x80, [hi, lo]) => options = u16::from_be_bytes([*hi, *lo]),
                (0x81, pin) if USER_PIN_LENGTHS.contains(&pin.len()) => user_pin = Some(pin),
                (0x82, pin) if pin.len() == SO_PIN_LENGTH => so_pin = Some(pin),
                (0x91, [n @ 1..=15]) => user_pin_tries = *n,
                (0x92, [n]) => dkek_shares = Some(*n),
                // Public-key authentication (93) is not offered by this card.
                (0x93, _) => return Err(Status::FunctionNotSupported),
                // Biometric server AIDs (95, 96) and key domains (97) are accepted and unused.
                (0x95..=0x97, _) => {}
                _ => return Err(Status::IncorrectData),
            }
        }
        Ok(InitParams {
            options,
            user_pin: user_pin.ok_or(Status::IncorrectData)?,
            so_pin: so_pin.ok_or(Status::IncorrectData)?,
            user_pin_tries,
            dkek_shares,
        })
    }
}

impl Card {
    /// INITIALIZE DEVICE: sets PINs and options and erases every object but the device key
    /// and its certificates. A first initialisation sets the SO-PIN; later ones must present
    /// it (a wrong one costs an SO try).
    pub(super) fn initialize_device(&mut self, data: &[u8]) -> Result<Response, Status> {
        let params = InitParams::parse(data)?;
        let so_record = match self.state.so_pin.clone() {
            Some(_) => self.check_pin(PinRef::So, params.so_pin)?,
            None => PinRecord::new(params.so_pin, SO_PIN_TRIES, self.salt()),
        };
        let user_record = PinRecord::new(params.user_pin, params.user_pin_tries, self.salt());
        let dkek = match params.dkek_shares {
            None => Dkek::Absent,
            Some(0) => {
                let mut value = Zeroizing::new([0u8; 32]);
                self.rng.fill_bytes(&mut value[..]);
                Dkek::Ready { total: 0, value }
            }
            Some(n) => Dkek::awaiting(n),
        };

        let mut batch = vec![
            Change::Config(Some(Config {
                options: params.options,
            })),
            Change::Pin(PinRef::So, Some(so_record)),
            Change::Pin(PinRef::User, Some(user_record)),
            Change::Dkek(dkek),
        ];
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
        self.session.current_ef = None;
        self.session.set_verified(PinRef::So, false);
        // The host writes EF.TokenInfo right after initialisation.
        self.session.set_verified(PinRef::User, true);
        Ok(Response::empty())
    }
}
