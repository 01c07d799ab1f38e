//! SRTP and SRTCP (RFC 3711) with the two profiles WebRTC uses: `AES_CM_128_HMAC_SHA1_80` (RFC 3711,
//! RFC 5764) and `AEAD_AES_128_GCM` (RFC 7714).
//!
//! Our own, because the media path must not allocate: every operation works **in place** on the
//! caller's packet buffer (the tag is written after the payload, so the buffer needs
//! [`Profile::rtp_overhead`] spare bytes). Keys are expanded once per context; per packet there is
//! one AES pass over the payload and one HMAC (or one GCM seal/open) and nothing else. Checked against
//! the RFC 3711 Appendix B test vectors and, round trip both ways, against webrtc-rs's `rtc-srtp`.
//!
//! A context is one direction of one association: [`SrtpContext::protect_rtp`] for what we send,
//! [`SrtpContext::unprotect_rtp`] for what we receive (with a 64-packet replay window per SSRC and
//! rollover-counter estimation per RFC 3711 §3.3.1).

use aes::Aes128;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use hmac::{Hmac, Mac};
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sha1::Sha1;

/// An SRTP protection profile, as negotiated by DTLS-SRTP (RFC 5764 §4.1.2) or SDES (RFC 4568).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `SRTP_AES128_CM_HMAC_SHA1_80` (0x0001): AES counter mode, 80-bit HMAC-SHA1 tag.
    Aes128CmHmacSha1_80,
    /// `SRTP_AEAD_AES_128_GCM` (0x0007): AES-GCM, 128-bit tag (RFC 7714).
    AeadAes128Gcm,
}

impl Profile {
    /// The DTLS-SRTP protection profile id (RFC 5764 §4.1.2, RFC 7714 §14.2).
    pub fn from_dtls_id(id: u16) -> Option<Self> {
        match id {
            0x0001 => Some(Self::Aes128CmHmacSha1_80),
            0x0007 => Some(Self::AeadAes128Gcm),
            _ => None,
        }
    }

    /// Master key length in bytes.
    pub const fn key_len(self) -> usize {
        16
    }

    /// Master salt length in bytes.
    pub const fn salt_len(self) -> usize {
        match self {
            Self::Aes128CmHmacSha1_80 => 14,
            Self::AeadAes128Gcm => 12,
        }
    }

    /// Bytes SRTP adds to an RTP packet (the tag).
    pub const fn rtp_overhead(self) -> usize {
        match self {
            Self::Aes128CmHmacSha1_80 => 10,
            Self::AeadAes128Gcm => 16,
        }
    }

    /// Bytes SRTCP adds to an RTCP packet (E flag + index, and the tag).
    pub const fn rtcp_overhead(self) -> usize {
        4 + self.rtp_overhead()
    }
}

/// Why a packet was refused. All of these are the peer's fault (or an attacker's): count and drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// packet too short or its RTP/RTCP header is malformed
    #[error("packet too short or its RTP/RTCP header is malformed")]
    Malformed,
    /// authentication tag did not verify
    #[error("authentication tag did not verify")]
    AuthFailed,
    /// packet index already seen or too old for the replay window
    #[error("packet index already seen or too old for the replay window")]
    Replayed,
    /// no room in the buffer for the authentication tag
    #[error("no room in the buffer for the authentication tag")]
    BufferTooSmall,
    /// SRTCP index exhausted: the association must be re-keyed
    #[error("SRTCP index exhausted: the association must be re-keyed")]
    IndexExhausted,
}

/// Key derivation labels (RFC 3711 §4.3.1).
const LABEL_RTP_ENC: u8 = 0;
const LABEL_RTP_AUTH: u8 = 1;
const LABEL_RTP_SALT: u8 = 2;
const LABEL_RTCP_ENC: u8 = 3;
const LABEL_RTCP_AUTH: u8 = 4;
const LABEL_RTCP_SALT: u8 = 5;

/// How many SSRCs a context tracks at once (a WebRTC audio leg has one; a few spare for SSRC changes).
const MAX_SSRCS: usize = 4;

/// The AES-CM PRF of RFC 3711 §4.3.3 with key-derivation rate 0: `out` gets the session key for `label`.
fn derive(master: &Aes128, master_salt: &[u8], label: u8, out: &mut [u8]) {
    let mut x = [0u8; 16];
    // A 12-byte (GCM) master salt is padded with zeros to 112 bits, as libsrtp does (RFC 7714 §11).
    let n = master_salt.len().min(14);
    x[..n].copy_from_slice(&master_salt[..n]);
    x[7] ^= label;
    ctr_xor(master, &x, out);
}

/// AES counter mode (RFC 3711 §4.1.1): `data ^= AES(iv + i)` for i = 0, 1, … (16-bit block counter in the
/// last two bytes of `iv`, which the caller leaves zero).
fn ctr_xor(cipher: &Aes128, iv: &[u8; 16], data: &mut [u8]) {
    const BATCH: usize = 8;
    let mut counter: u16 = 0;
    for chunk in data.chunks_mut(16 * BATCH) {
        let mut blocks = [Array::from([0u8; 16]); BATCH];
        let n = chunk.len().div_ceil(16);
        for block in blocks.iter_mut().take(n) {
            let mut b = *iv;
            let c = u16::from_be_bytes([b[14], b[15]]).wrapping_add(counter);
            b[14..].copy_from_slice(&c.to_be_bytes());
            *block = Array::from(b);
            counter = counter.wrapping_add(1);
        }
        cipher.encrypt_blocks(&mut blocks[..n]);
        for (bytes, block) in chunk.chunks_mut(16).zip(blocks.iter()) {
            for (d, k) in bytes.iter_mut().zip(block.iter()) {
                *d ^= k;
            }
        }
    }
}

/// The session keys for one of RTP or RTCP.
enum Cipher {
    Cm {
        aes: Box<Aes128>,
        salt: [u8; 14],
        auth: Box<Hmac<Sha1>>,
    },
    Gcm {
        key: Box<LessSafeKey>,
        salt: [u8; 12],
    },
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cm { .. } => "Cipher::Cm",
            Self::Gcm { .. } => "Cipher::Gcm",
        })
    }
}

impl Cipher {
    fn new(profile: Profile, master: &Aes128, master_salt: &[u8], rtcp: bool) -> Self {
        let (l_enc, l_auth, l_salt) = if rtcp {
            (LABEL_RTCP_ENC, LABEL_RTCP_AUTH, LABEL_RTCP_SALT)
        } else {
            (LABEL_RTP_ENC, LABEL_RTP_AUTH, LABEL_RTP_SALT)
        };
        let mut enc = [0u8; 16];
        derive(master, master_salt, l_enc, &mut enc);
        match profile {
            Profile::Aes128CmHmacSha1_80 => {
                let mut auth = [0u8; 20];
                let mut salt = [0u8; 14];
                derive(master, master_salt, l_auth, &mut auth);
                derive(master, master_salt, l_salt, &mut salt);
                Self::Cm {
                    aes: Box::new(Aes128::new(&Array::from(enc))),
                    salt,
                    auth: Box::new(
                        <Hmac<Sha1> as KeyInit>::new_from_slice(&auth)
                            .expect("HMAC takes a key of any length"),
                    ),
                }
            }
            Profile::AeadAes128Gcm => {
                let mut salt = [0u8; 12];
                derive(master, master_salt, l_salt, &mut salt);
                Self::Gcm {
                    key: Box::new(LessSafeKey::new(
                        UnboundKey::new(&AES_128_GCM, &enc).expect("a 16-byte key suits AES-128-GCM"),
                    )),
                    salt,
                }
            }
        }
    }
}

/// Per-SSRC state: rollover counter and (receiving) replay window.
#[derive(Debug, Clone, Copy, Default)]
struct SsrcState {
    ssrc: u32,
    in_use: bool,
    roc: u32,
    /// Highest sequence number seen (s_l of RFC 3711 §3.3.1).
    last_seq: u16,
    started: bool,
    /// Replay bitmap: bit i set = index (highest − i) seen.
    window: u64,
    /// RTCP: next SRTCP index to send / highest index received.
    rtcp_index: u32,
    rtcp_window: u64,
    rtcp_started: bool,
    /// Last use, for eviction when more SSRCs show up than we track.
    stamp: u64,
}

/// One direction of an SRTP association: the session keys and per-SSRC counters.
#[derive(Debug)]
pub struct SrtpContext {
    profile: Profile,
    rtp: Cipher,
    rtcp: Cipher,
    ssrcs: [SsrcState; MAX_SSRCS],
    clock: u64,
}

/// Length of the RTP header (fixed part, CSRCs and extension) of `p`, checked against its length.
pub fn rtp_header_len(p: &[u8]) -> Option<usize> {
    let first = *p.first()?;
    if first >> 6 != 2 || p.len() < 12 {
        return None;
    }
    let mut len = 12 + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let ext = p.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    (len <= p.len()).then_some(len)
}

fn be32(p: &[u8], at: usize) -> Option<u32> {
    let b = p.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

impl SrtpContext {
    /// A context from the master key and salt (lengths per `profile`; longer inputs are cut, shorter
    /// are refused with `None`).
    pub fn new(profile: Profile, master_key: &[u8], master_salt: &[u8]) -> Option<Self> {
        let key: [u8; 16] = master_key.get(..profile.key_len())?.try_into().ok()?;
        let salt = master_salt.get(..profile.salt_len())?;
        let master = Aes128::new(&Array::from(key));
        Some(Self {
            profile,
            rtp: Cipher::new(profile, &master, salt, false),
            rtcp: Cipher::new(profile, &master, salt, true),
            ssrcs: [SsrcState::default(); MAX_SSRCS],
            clock: 0,
        })
    }

    /// The profile this context protects with.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    fn state(&mut self, ssrc: u32) -> &mut SsrcState {
        self.clock += 1;
        let clock = self.clock;
        let slot = self
            .ssrcs
            .iter()
            .position(|s| s.in_use && s.ssrc == ssrc)
            .or_else(|| self.ssrcs.iter().position(|s| !s.in_use))
            .unwrap_or_else(|| {
                // Evict the least recently used SSRC.
                let mut oldest = 0;
                for (i, s) in self.ssrcs.iter().enumerate() {
                    if s.stamp < self.ssrcs[oldest].stamp {
                        oldest = i;
                    }
                }
                oldest
            });
        let s = &mut self.ssrcs[slot];
        if !s.in_use || s.ssrc != ssrc {
            *s = SsrcState {
                ssrc,
                in_use: true,
                ..SsrcState::default()
            };
        }
        s.stamp = clock;
        s
    }

    /// Encrypts and authenticates the RTP packet in `buf[..len]` in place; returns the new length
    /// (`len` + [`Profile::rtp_overhead`]).
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let overhead = self.profile.rtp_overhead();
        if buf.len() < len + overhead {
            return Err(SrtpError::BufferTooSmall);
        }
        let packet = buf.get(..len).ok_or(SrtpError::Malformed)?;
        let header_len = rtp_header_len(packet).ok_or(SrtpError::Malformed)?;
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = be32(packet, 8).ok_or(SrtpError::Malformed)?;
        // Sender side rollover counter: we see our own sequence numbers in order (a jump back by more
        // than half the space is a wrap).
        let st = self.state(ssrc);
        if st.started && seq < st.last_seq && st.last_seq - seq > 0x8000 {
            st.roc = st.roc.wrapping_add(1);
        }
        if !st.started || seq > st.last_seq || st.last_seq - seq > 0x8000 {
            st.last_seq = seq;
        }
        st.started = true;
        let roc = st.roc;
        match &self.rtp {
            Cipher::Cm { aes, salt, auth } => {
                let iv = cm_iv(salt, ssrc, (u64::from(roc) << 16) | u64::from(seq));
                ctr_xor(aes, &iv, &mut buf[header_len..len]);
                let mut mac = (**auth).clone();
                mac.update(&buf[..len]);
                mac.update(&roc.to_be_bytes());
                let tag = mac.finalize().into_bytes();
                buf[len..len + 10].copy_from_slice(&tag[..10]);
            }
            Cipher::Gcm { key, salt } => {
                let nonce = gcm_rtp_iv(salt, ssrc, roc, seq);
                let (header, rest) = buf.split_at_mut(header_len);
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(&*header),
                        &mut rest[..len - header_len],
                    )
                    .map_err(|_| SrtpError::Malformed)?;
                rest[len - header_len..len - header_len + 16].copy_from_slice(tag.as_ref());
            }
        }
        Ok(len + overhead)
    }

    /// Verifies and decrypts the SRTP packet in `buf` in place; returns the RTP packet's length.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let overhead = self.profile.rtp_overhead();
        let len = buf.len().checked_sub(overhead).ok_or(SrtpError::Malformed)?;
        let header_len = rtp_header_len(&buf[..len]).ok_or(SrtpError::Malformed)?;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = be32(buf, 8).ok_or(SrtpError::Malformed)?;
        let st = *self.state(ssrc);
        // RFC 3711 §3.3.1: guess the rollover counter for this sequence number.
        let roc = if !st.started {
            st.roc
        } else if st.last_seq < 0x8000 {
            if seq > st.last_seq && seq - st.last_seq > 0x8000 {
                st.roc.wrapping_sub(1)
            } else {
                st.roc
            }
        } else if st.last_seq - 0x8000 > seq {
            st.roc.wrapping_add(1)
        } else {
            st.roc
        };
        let index = (u64::from(roc) << 16) | u64::from(seq);
        let highest = (u64::from(st.roc) << 16) | u64::from(st.last_seq);
        if st.started && index <= highest {
            let back = highest - index;
            if back >= 64 || st.window & (1 << back) != 0 {
                return Err(SrtpError::Replayed);
            }
        }
        match &self.rtp {
            Cipher::Cm { aes, salt, auth } => {
                let mut mac = (**auth).clone();
                mac.update(&buf[..len]);
                mac.update(&roc.to_be_bytes());
                let tag = mac.finalize().into_bytes();
                if !constant_time_eq(&tag[..10], &buf[len..len + 10]) {
                    return Err(SrtpError::AuthFailed);
                }
                let iv = cm_iv(salt, ssrc, index);
                ctr_xor(aes, &iv, &mut buf[header_len..len]);
            }
            Cipher::Gcm { key, salt } => {
                let nonce = gcm_rtp_iv(salt, ssrc, roc, seq);
                let (header, rest) = buf.split_at_mut(header_len);
                key.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(&*header), rest)
                    .map_err(|_| SrtpError::AuthFailed)?;
            }
        }
        // Authentic: commit the counters and mark the window.
        let st = self.state(ssrc);
        if !st.started || index > highest {
            let shift = if st.started { index - highest } else { 64 };
            st.window = if shift >= 64 { 0 } else { st.window << shift };
            st.window |= 1;
            st.roc = roc;
            st.last_seq = seq;
            st.started = true;
        } else {
            st.window |= 1 << (highest - index);
        }
        Ok(len)
    }

    /// Encrypts and authenticates the RTCP compound packet in `buf[..len]` in place; returns the new
    /// length (`len` + [`Profile::rtcp_overhead`]).
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let overhead = self.profile.rtcp_overhead();
        if buf.len() < len + overhead {
            return Err(SrtpError::BufferTooSmall);
        }
        if len < 8 || buf[0] >> 6 != 2 {
            return Err(SrtpError::Malformed);
        }
        let ssrc = be32(buf, 4).ok_or(SrtpError::Malformed)?;
        let st = self.state(ssrc);
        let index = st.rtcp_index;
        if index >= 0x7fff_ffff {
            return Err(SrtpError::IndexExhausted);
        }
        st.rtcp_index += 1;
        let e_index = (index | 0x8000_0000).to_be_bytes();
        match &self.rtcp {
            Cipher::Cm { aes, salt, auth } => {
                let iv = cm_iv(salt, ssrc, u64::from(index));
                ctr_xor(aes, &iv, &mut buf[8..len]);
                buf[len..len + 4].copy_from_slice(&e_index);
                let mut mac = (**auth).clone();
                mac.update(&buf[..len + 4]);
                let tag = mac.finalize().into_bytes();
                buf[len + 4..len + 14].copy_from_slice(&tag[..10]);
            }
            Cipher::Gcm { key, salt } => {
                let nonce = gcm_rtcp_iv(salt, ssrc, index);
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&buf[..8]);
                aad[8..].copy_from_slice(&e_index);
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        &mut buf[8..len],
                    )
                    .map_err(|_| SrtpError::Malformed)?;
                buf[len..len + 16].copy_from_slice(tag.as_ref());
                buf[len + 16..len + 20].copy_from_slice(&e_index);
            }
        }
        Ok(len + overhead)
    }

    /// Verifies and (if the E flag says so) decrypts the SRTCP packet in `buf` in place; returns the
    /// RTCP packet's length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let overhead = self.profile.rtcp_overhead();
        let len = buf.len().checked_sub(overhead).ok_or(SrtpError::Malformed)?;
        if len < 8 || buf[0] >> 6 != 2 {
            return Err(SrtpError::Malformed);
        }
        let ssrc = be32(buf, 4).ok_or(SrtpError::Malformed)?;
        let e_index_at = match self.profile {
            Profile::Aes128CmHmacSha1_80 => len,
            Profile::AeadAes128Gcm => len + 16,
        };
        let e_index = be32(buf, e_index_at).ok_or(SrtpError::Malformed)?;
        let encrypted = e_index & 0x8000_0000 != 0;
        let index = e_index & 0x7fff_ffff;
        let st = *self.state(ssrc);
        if st.rtcp_started && index <= st.rtcp_index {
            let back = st.rtcp_index - index;
            if back >= 64 || st.rtcp_window & (1 << back) != 0 {
                return Err(SrtpError::Replayed);
            }
        }
        match &self.rtcp {
            Cipher::Cm { aes, salt, auth } => {
                let mut mac = (**auth).clone();
                mac.update(&buf[..len + 4]);
                let tag = mac.finalize().into_bytes();
                if !constant_time_eq(&tag[..10], &buf[len + 4..len + 14]) {
                    return Err(SrtpError::AuthFailed);
                }
                if encrypted {
                    let iv = cm_iv(salt, ssrc, u64::from(index));
                    ctr_xor(aes, &iv, &mut buf[8..len]);
                }
            }
            Cipher::Gcm { key, salt } => {
                let nonce = gcm_rtcp_iv(salt, ssrc, index);
                let e_bytes = e_index.to_be_bytes();
                if encrypted {
                    let mut aad = [0u8; 12];
                    aad[..8].copy_from_slice(&buf[..8]);
                    aad[8..].copy_from_slice(&e_bytes);
                    key.open_in_place(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        &mut buf[8..len + 16],
                    )
                    .map_err(|_| SrtpError::AuthFailed)?;
                } else {
                    // Unencrypted SRTCP (RFC 7714 §9.2): the whole packet is AAD, the tag covers it.
                    let (packet, tag_and_index) = buf.split_at_mut(len);
                    let mut tag = [0u8; 16];
                    tag.copy_from_slice(&tag_and_index[..16]);
                    let mut aad = heapless::Vec::<u8, 1504>::new();
                    aad.extend_from_slice(packet).map_err(|_| SrtpError::Malformed)?;
                    aad.extend_from_slice(&e_bytes)
                        .map_err(|_| SrtpError::Malformed)?;
                    key.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(&aad[..]), &mut tag)
                        .map_err(|_| SrtpError::AuthFailed)?;
                }
            }
        }
        let st = self.state(ssrc);
        if !st.rtcp_started || index > st.rtcp_index {
            let shift = if st.rtcp_started {
                index - st.rtcp_index
            } else {
                64
            };
            st.rtcp_window = if shift >= 64 { 0 } else { st.rtcp_window << shift };
            st.rtcp_window |= 1;
            st.rtcp_index = index;
            st.rtcp_started = true;
        } else {
            st.rtcp_window |= 1 << (st.rtcp_index - index);
        }
        Ok(len)
    }
}

/// The AES-CM IV (RFC 3711 §4.1.1): `(salt · 2^16) XOR (SSRC · 2^64) XOR (index · 2^16)`.
fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (d, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *d ^= s;
    }
    for (d, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *d ^= s;
    }
    iv
}

/// The GCM IV for SRTP (RFC 7714 §8.1): `00 00 || SSRC || ROC || SEQ`, XOR the session salt.
fn gcm_rtp_iv(salt: &[u8; 12], ssrc: u32, roc: u32, seq: u16) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..10].copy_from_slice(&roc.to_be_bytes());
    iv[10..12].copy_from_slice(&seq.to_be_bytes());
    for (d, s) in iv.iter_mut().zip(salt) {
        *d ^= s;
    }
    iv
}

/// The GCM IV for SRTCP (RFC 7714 §9.1): `00 00 || SSRC || 00 00 || 0 + SRTCP index`, XOR the salt.
fn gcm_rtcp_iv(salt: &[u8; 12], ssrc: u32, index: u32) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..12].copy_from_slice(&(index & 0x7fff_ffff).to_be_bytes());
    for (d, s) in iv.iter_mut().zip(salt) {
        *d ^= s;
    }
    iv
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 3711 Appendix B.2: the AES-CM keystream.
    #[test]
    fn rfc3711_b2_aes_cm_keystream() {
        let key: [u8; 16] = hex("2B7E151628AED2A6ABF7158809CF4F3C").try_into().unwrap();
        let aes = Aes128::new(&Array::from(key));
        let iv: [u8; 16] = hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000").try_into().unwrap();
        let mut out = [0u8; 48];
        ctr_xor(&aes, &iv, &mut out);
        assert_eq!(
            out.to_vec(),
            hex(
                "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB \
                 41E95B3BB0A2E8DD477901E4FCA894C0"
            )
        );
    }

    /// RFC 3711 Appendix B.3: key derivation.
    #[test]
    fn rfc3711_b3_key_derivation() {
        let key: [u8; 16] = hex("E1F97A0D3E018BE0D64FA32C06DE4139").try_into().unwrap();
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        let master = Aes128::new(&Array::from(key));
        let mut enc = [0u8; 16];
        derive(&master, &salt, LABEL_RTP_ENC, &mut enc);
        assert_eq!(enc.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut s = [0u8; 14];
        derive(&master, &salt, LABEL_RTP_SALT, &mut s);
        assert_eq!(s.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut auth = [0u8; 20];
        derive(&master, &salt, LABEL_RTP_AUTH, &mut auth);
        assert_eq!(auth.to_vec(), hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"));
    }

    fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 0];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn pair(profile: Profile) -> (SrtpContext, SrtpContext) {
        let key = [7u8; 16];
        let salt = [9u8; 14];
        (
            SrtpContext::new(profile, &key, &salt).unwrap(),
            SrtpContext::new(profile, &key, &salt).unwrap(),
        )
    }

    fn rtc_ctx(profile: Profile) -> rtc_srtp::context::Context {
        let p = match profile {
            Profile::Aes128CmHmacSha1_80 => {
                rtc_srtp::protection_profile::ProtectionProfile::Aes128CmHmacSha1_80
            }
            Profile::AeadAes128Gcm => rtc_srtp::protection_profile::ProtectionProfile::AeadAes128Gcm,
        };
        rtc_srtp::context::Context::new(
            &[7u8; 16],
            &[9u8; 14][..profile.salt_len()],
            p,
            None,
            None,
            rtc_crypto::default_provider().unwrap().crypto(),
        )
        .unwrap()
    }

    /// Round trip against webrtc-rs's independent implementation, both directions, both profiles,
    /// across a sequence-number wrap (rollover counter).
    #[test]
    fn interoperates_with_rtc_srtp() {
        for profile in [Profile::Aes128CmHmacSha1_80, Profile::AeadAes128Gcm] {
            let (mut ours_tx, mut ours_rx) = pair(profile);
            let mut theirs_tx = rtc_ctx(profile);
            let mut theirs_rx = rtc_ctx(profile);
            for i in 0..300u16 {
                let seq = 65_400u16.wrapping_add(i);
                let payload = [i.to_le_bytes()[0]; 160];
                let plain = rtp(seq, 0xdead_beef, &payload);
                // ours → theirs
                let mut buf = [0u8; 1500];
                buf[..plain.len()].copy_from_slice(&plain);
                let n = ours_tx.protect_rtp(&mut buf, plain.len()).unwrap();
                let back = theirs_rx.decrypt_rtp(&buf[..n]).unwrap();
                assert_eq!(&back[..], &plain[..], "{profile:?} seq {seq}");
                // theirs → ours
                let enc = theirs_tx.encrypt_rtp(&plain).unwrap();
                let mut buf = enc.to_vec();
                let n = ours_rx.unprotect_rtp(&mut buf).unwrap();
                assert_eq!(&buf[..n], &plain[..], "{profile:?} seq {seq}");
            }
            // RTCP both ways: a receiver report.
            let rr = [
                0x81u8, 201, 0, 7, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0,
                0, 0, 0, 0, 0, 0, 0,
            ];
            for _ in 0..3 {
                let mut buf = [0u8; 1500];
                buf[..rr.len()].copy_from_slice(&rr);
                let n = ours_tx.protect_rtcp(&mut buf, rr.len()).unwrap();
                let back = theirs_rx.decrypt_rtcp(&buf[..n]).unwrap();
                assert_eq!(&back[..], &rr[..], "{profile:?} rtcp");
                let enc = theirs_tx.encrypt_rtcp(&rr).unwrap();
                let mut buf = enc.to_vec();
                let n = ours_rx.unprotect_rtcp(&mut buf).unwrap();
                assert_eq!(&buf[..n], &rr[..], "{profile:?} rtcp");
            }
        }
    }

    #[test]
    fn replay_tamper_and_garbage_are_refused() {
        for profile in [Profile::Aes128CmHmacSha1_80, Profile::AeadAes128Gcm] {
            let (mut tx, mut rx) = pair(profile);
            let plain = rtp(10, 1, &[1; 20]);
            let mut buf = [0u8; 64];
            buf[..plain.len()].copy_from_slice(&plain);
            let n = tx.protect_rtp(&mut buf, plain.len()).unwrap();
            let sent = buf[..n].to_vec();
            let mut once = sent.clone();
            assert_eq!(rx.unprotect_rtp(&mut once), Ok(plain.len()));
            let mut again = sent.clone();
            assert_eq!(rx.unprotect_rtp(&mut again), Err(SrtpError::Replayed));
            // A later packet is fine; the old one stays refused.
            let plain2 = rtp(11, 1, &[2; 20]);
            buf[..plain2.len()].copy_from_slice(&plain2);
            let n2 = tx.protect_rtp(&mut buf, plain2.len()).unwrap();
            let mut tampered = buf[..n2].to_vec();
            tampered[15] ^= 1;
            assert_eq!(rx.unprotect_rtp(&mut tampered), Err(SrtpError::AuthFailed));
            let mut good = buf[..n2].to_vec();
            assert_eq!(rx.unprotect_rtp(&mut good), Ok(plain2.len()));
            for junk in [&[][..], &[0x80], &[0x80; 11], &[0x9f; 40], &[0x00; 40]] {
                let mut j = junk.to_vec();
                assert!(rx.unprotect_rtp(&mut j).is_err());
                let mut j = junk.to_vec();
                assert!(rx.unprotect_rtcp(&mut j).is_err());
            }
            let mut small = [0u8; 13];
            small[..12].copy_from_slice(&plain[..12]);
            assert_eq!(tx.protect_rtp(&mut small, 12), Err(SrtpError::BufferTooSmall));
        }
    }

    /// Out-of-order arrival inside the window is accepted once; a packet 64 behind is refused.
    #[test]
    fn replay_window_accepts_reordering() {
        let (mut tx, mut rx) = pair(Profile::Aes128CmHmacSha1_80);
        let mut sent = Vec::new();
        for seq in 0..100u16 {
            let plain = rtp(seq, 5, &[0; 8]);
            let mut buf = [0u8; 64];
            buf[..plain.len()].copy_from_slice(&plain);
            let n = tx.protect_rtp(&mut buf, plain.len()).unwrap();
            sent.push(buf[..n].to_vec());
        }
        assert!(rx.unprotect_rtp(&mut sent[99].clone()).is_ok());
        assert!(rx.unprotect_rtp(&mut sent[50].clone()).is_ok());
        assert_eq!(rx.unprotect_rtp(&mut sent[50].clone()), Err(SrtpError::Replayed));
        assert_eq!(rx.unprotect_rtp(&mut sent[30].clone()), Err(SrtpError::Replayed));
    }
}
