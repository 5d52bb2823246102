//! SELECT, READ BINARY, UPDATE BINARY, DELETE FILE, ENUMERATE OBJECTS.

use super::command::{SelectAnswer, Target};
use super::Applet;
use super::{AID, VERSION};
use crate::apdu::{tlv, Response, Status};
use crate::model::key::DEVICE_KEY_ID;
use crate::model::objects::{self, Access};
use crate::model::{Change, FileEntry};

/// Card type byte of tag 85: what a Nitrokey HSM 2 with firmware 4.1 answers (OpenSC issue
/// #3602); any value but 00/01 makes OpenSC say plain "SmartCard-HSM".
const CARD_TYPE: u8 = 0x06;

impl Applet {
    fn resolve(&self, target: Target) -> Result<u16, Status> {
        match target {
            Target::File(fid) => Ok(fid),
            // ISO 7816-4: no current EF.
            Target::Current => self.session.current_ef.ok_or(Status::CommandNotAllowed),
        }
    }

    /// Whether `fid` names a key the card holds.
    fn is_key(&self, fid: u16) -> bool {
        objects::key_id(fid).is_some_and(|id| self.state.keys.contains_key(&id))
    }

    /// SELECT by AID: our application answers its FCI/FCP with tag 85 and drops all security
    /// status; other applications are not on this card.
    pub(super) fn select_application(
        &mut self,
        aid: &[u8],
        answer: SelectAnswer,
    ) -> Result<Response, Status> {
        if aid != AID {
            return Err(Status::NotFound);
        }
        self.session.select_application(self.state.user_rule());

        let options = self.state.options();
        let [opt_hi, opt_lo] = options.to_be_bytes();
        // 82 01 78: a shareable DF; 85: options, card type, version.
        let mut content = vec![0x82, 0x01, 0x78];
        tlv::write(
            &mut content,
            0x85,
            &[opt_hi, opt_lo, CARD_TYPE, VERSION.0, VERSION.1],
        );
        Ok(template(answer, &content))
    }

    /// SELECT by FID: an EF becomes the current EF. A key is shown as an empty working EF
    /// whose proprietary template `A5` tells its use counter (`90`, when it has one), its
    /// allowed algorithms (`91`, when restricted) and its key domain (`92`).
    pub(super) fn select_file(
        &mut self,
        fid: u16,
        answer: SelectAnswer,
    ) -> Result<Response, Status> {
        let key = objects::key_id(fid).and_then(|id| self.state.keys.get(&id));
        let mut content = match (self.state.files.get(&fid), key) {
            (Some(file), _) => objects::ef_control_parameters(fid, file.data.len()),
            (None, Some(_)) => objects::ef_control_parameters(fid, 0),
            (None, None) => return Err(Status::NotFound),
        };
        if let Some(key) = key {
            let mut info = Vec::new();
            if let Some(n) = key.policy.uses_left {
                tlv::write(&mut info, 0x90, &n.to_be_bytes());
            }
            if let Some(list) = &key.policy.algorithms {
                tlv::write(&mut info, 0x91, list);
            }
            tlv::write(&mut info, 0x92, &[key.policy.domain_or_default()]);
            tlv::write(&mut content, 0xA5, &info);
        }
        self.session.current_ef = Some(fid);
        Ok(template(answer, &content))
    }

    pub(super) fn read_binary(
        &mut self,
        target: Target,
        offset: usize,
        max: usize,
    ) -> Result<Response, Status> {
        let fid = self.resolve(target)?;
        if !self.state.files.contains_key(&fid) && !self.is_key(fid) {
            return Err(Status::NotFound);
        }
        self.session.require(objects::read_access(fid))?;
        self.session.current_ef = Some(fid);
        let data = self.state.files.get(&fid).map_or(&[][..], |f| &f.data[..]);
        let start = offset.min(data.len());
        let end = offset.saturating_add(max).min(data.len());
        let status = if offset.saturating_add(max) > data.len() {
            Status::EndOfFile
        } else {
            Status::Success
        };
        Ok(Response {
            data: data[start..end].to_vec(),
            status,
        })
    }

    /// UPDATE BINARY with odd INS: writes at `offset`, creating the file if needed. A write
    /// at offset 0 replaces the whole content (hosts stage blobs of different lengths in
    /// EF 2F10 without deleting it); a write further on keeps what is around it.
    pub(super) fn update_binary(
        &mut self,
        target: Target,
        offset: usize,
        data: &[u8],
    ) -> Result<Response, Status> {
        let fid = self.resolve(target)?;
        if !objects::is_valid_fid(fid) {
            return Err(Status::IncorrectP1P2);
        }
        self.session.require(objects::write_access(fid))?;
        let (seq, mut content) = match self.state.files.get(&fid) {
            Some(file) => (file.seq, file.data.clone()),
            None => (self.state.next_seq(), Vec::new()),
        };
        if offset > content.len() {
            return Err(Status::WrongOffset);
        }
        let end = offset + data.len();
        if end > self.limits.max_file_size {
            return Err(Status::NotEnoughMemory);
        }
        if offset == 0 {
            content.clear();
        }
        if end > content.len() {
            content.resize(end, 0);
        }
        content[offset..end].copy_from_slice(data);
        self.limits.admit_file(&self.state, fid, content.len())?;
        self.commit(vec![Change::PutFile(fid, FileEntry { seq, data: content })])?;
        self.session.current_ef = Some(fid);
        Ok(Response::empty())
    }

    pub(super) fn delete_file(&mut self, fid: u16) -> Result<Response, Status> {
        self.session.require(Access::UserPin)?;
        let change = match objects::key_id(fid) {
            Some(DEVICE_KEY_ID) => return Err(Status::SecurityStatusNotSatisfied),
            Some(id) if self.state.keys.contains_key(&id) => Change::DeleteKey(id),
            _ if self.state.files.contains_key(&fid) => {
                self.session.require(objects::write_access(fid))?;
                Change::DeleteFile(fid)
            }
            _ => return Err(Status::NotFound),
        };
        self.commit(vec![change])?;
        if self.session.current_ef == Some(fid) {
            self.session.current_ef = None;
        }
        Ok(Response::empty())
    }

    /// The FIDs of all files in creation order, then all keys.
    pub(super) fn enumerate_objects(&self) -> Response {
        let mut by_creation: Vec<(u64, u16)> = self
            .state
            .files
            .iter()
            .map(|(fid, f)| (f.seq, *fid))
            .collect();
        by_creation.sort_unstable();
        let mut out = Vec::with_capacity(2 * (by_creation.len() + self.state.keys.len()));
        for (_, fid) in by_creation {
            out.extend_from_slice(&fid.to_be_bytes());
        }
        for id in self.state.keys.keys() {
            out.extend_from_slice(&objects::key_fid(*id).to_be_bytes());
        }
        Response::ok(out)
    }
}

/// Wraps control parameters in the template SELECT's P2 asked for.
fn template(answer: SelectAnswer, content: &[u8]) -> Response {
    match answer {
        SelectAnswer::Fci => Response::ok(tlv::encode(0x6F, content)),
        SelectAnswer::Fcp => Response::ok(tlv::encode(0x62, content)),
        SelectAnswer::Nothing => Response::empty(),
    }
}
