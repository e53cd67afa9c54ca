//! SASL client mechanisms for Kafka's SaslHandshake v1 + SaslAuthenticate: PLAIN (RFC 4616)
//! and SCRAM-SHA-256/512 (RFC 5802, RFC 7677). Pure: this module only builds the `auth_bytes`
//! tokens to send and checks the broker's answers; the transport lives elsewhere.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

/// Highest SCRAM iteration count accepted from a broker. Kafka stores credentials with 4096 to
/// 16384 iterations; a far larger count would only pin a thread (a hostile or broken broker
/// could ask for 2^32 − 1), so it is refused rather than computed.
const MAX_ITERATIONS: u32 = 1_000_000;

/// A SASL mechanism the exporter speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    const ALL: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
    ];

    /// From the `sasl.mechanism` property (case-insensitive: PLAIN, SCRAM-SHA-256,
    /// SCRAM-SHA-512); the error is one line naming the value and the supported ones.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let wanted = text.trim();
        Self::ALL
            .into_iter()
            .find(|mechanism| mechanism.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| {
                format!(
                    "unsupported sasl.mechanism {text:?}: supported are PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
                )
            })
    }

    /// The name sent in SaslHandshake.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// The hash function H behind a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    /// HMAC(key, data).
    fn hmac(self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            ScramHash::Sha256 => hmac_with::<Hmac<sha2::Sha256>>(key, data),
            ScramHash::Sha512 => hmac_with::<Hmac<sha2::Sha512>>(key, data),
        }
    }

    /// H(data).
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => <sha2::Sha256 as sha2::Digest>::digest(data).to_vec(),
            ScramHash::Sha512 => <sha2::Sha512 as sha2::Digest>::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, i) of RFC 5802 §2.2: PBKDF2 with HMAC-H, one block of output.
    fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Result<Vec<u8>, String> {
        match self {
            ScramHash::Sha256 => hi_with::<Hmac<sha2::Sha256>>(password, salt, iterations),
            ScramHash::Sha512 => hi_with::<Hmac<sha2::Sha512>>(password, salt, iterations),
        }
    }
}

/// A keyed HMAC state. HMAC takes keys of any length, so the error cannot happen in
/// practice; it is still carried rather than unwrapped.
fn keyed<M: Mac + KeyInit>(key: &[u8]) -> Result<M, String> {
    <M as Mac>::new_from_slice(key).map_err(|_| "HMAC refused its key".to_string())
}

fn hmac_with<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    let mut mac = keyed::<M>(key)?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Hi over one concrete HMAC. The keyed state is built once and cloned per round, since
/// re-keying costs extra compressions and Hi runs thousands of rounds.
fn hi_with<M: Mac + KeyInit + Clone>(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Result<Vec<u8>, String> {
    let base = keyed::<M>(password)?;
    // U1 = HMAC(password, salt || INT(1)).
    let mut mac = base.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u = mac.finalize().into_bytes();
    let mut result = u.clone();
    for _ in 1..iterations {
        let mut mac = base.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes();
        for (r, b) in result.iter_mut().zip(u.iter()) {
            *r ^= b;
        }
    }
    Ok(result.to_vec())
}

/// One authentication exchange: tokens to send, answers to check.
///
/// SCRAM passwords are used as their UTF-8 bytes without SASLprep (RFC 4013); that matches
/// Kafka's own clients and brokers, which do not normalise either, so only passwords whose
/// SASLprep form differs (rare: non-ASCII spaces, compatibility characters) are affected.
pub(crate) enum Exchange {
    /// PLAIN token sent; the broker's answer (empty on success) completes the exchange.
    PlainSent,
    /// SCRAM client-first sent; waiting for server-first.
    ScramFirstSent {
        hash: ScramHash,
        password: String,
        client_first_bare: String,
        client_nonce: String,
    },
    /// SCRAM client-final sent; waiting for server-final, which must prove the broker knows
    /// the credential too.
    ScramFinalSent { server_signature: Vec<u8> },
    /// Authenticated.
    Done,
    /// An answer was refused; the exchange cannot be resumed.
    Failed,
}

// By hand, so the password never reaches a log line.
impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self {
            Exchange::PlainSent => "PlainSent",
            Exchange::ScramFirstSent { .. } => "ScramFirstSent",
            Exchange::ScramFinalSent { .. } => "ScramFinalSent",
            Exchange::Done => "Done",
            Exchange::Failed => "Failed",
        };
        f.write_str(state)
    }
}

impl Exchange {
    /// Start: for PLAIN the single token `\0user\0password` (neither may contain NUL, which
    /// separates the fields); for SCRAM the client-first message `n,,n=<saslname>,r=<nonce>`.
    /// `nonce` must be printable ASCII without ',' (see [`nonce`]); it is passed in so tests
    /// are deterministic.
    pub(crate) fn start(
        mechanism: Mechanism,
        username: &str,
        password: &str,
        nonce: &str,
    ) -> (Exchange, Vec<u8>) {
        let hash = match mechanism {
            Mechanism::Plain => {
                // Empty authzid: act as the authenticated user.
                let token = format!("\0{username}\0{password}").into_bytes();
                return (Exchange::PlainSent, token);
            }
            Mechanism::ScramSha256 => ScramHash::Sha256,
            Mechanism::ScramSha512 => ScramHash::Sha512,
        };
        debug_assert!(
            !nonce.is_empty() && nonce.bytes().all(is_nonce_byte),
            "SCRAM nonce must be printable ASCII without ','"
        );
        let client_first_bare = format!("n={},r={nonce}", escape_username(username));
        // GS2 header "n,,": no channel binding, no authzid.
        let token = format!("n,,{client_first_bare}").into_bytes();
        let exchange = Exchange::ScramFirstSent {
            hash,
            password: password.to_string(),
            client_first_bare,
            client_nonce: nonce.to_string(),
        };
        (exchange, token)
    }

    /// Feed the server's answer: `Ok(Some(token))` = send this next, `Ok(None)` = done
    /// (authenticated; for SCRAM only once the server signature `v=` verified). Any error
    /// leaves the exchange failed.
    pub(crate) fn answer(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>, String> {
        match std::mem::replace(self, Exchange::Failed) {
            Exchange::PlainSent => {
                *self = Exchange::Done;
                Ok(None)
            }
            Exchange::ScramFirstSent {
                hash,
                password,
                client_first_bare,
                client_nonce,
            } => {
                let server_first = utf8(server, "server-first")?;
                let (client_final, server_signature) = client_final(
                    hash,
                    &password,
                    &client_first_bare,
                    &client_nonce,
                    server_first,
                )?;
                *self = Exchange::ScramFinalSent { server_signature };
                Ok(Some(client_final.into_bytes()))
            }
            Exchange::ScramFinalSent { server_signature } => {
                verify_server_final(&server_signature, utf8(server, "server-final")?)?;
                *self = Exchange::Done;
                Ok(None)
            }
            Exchange::Done => Err("unexpected SASL message after authentication completed".into()),
            Exchange::Failed => Err("unexpected SASL message: the exchange already failed".into()),
        }
    }
}

/// A fresh random nonce: 24 bytes from the OS RNG, base64 (32 characters, no padding, no ',').
pub(crate) fn nonce() -> Result<String, String> {
    let mut bytes = [0u8; 24];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| format!("cannot draw a SCRAM nonce from the OS random source: {e}"))?;
    Ok(STANDARD.encode(bytes))
}

/// RFC 5802 `printable`: %x21-2B / %x2D-7E (printable ASCII except ',').
fn is_nonce_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b','
}

/// RFC 5802 `saslname`: '=' and ',' would break the attribute syntax, so they are escaped.
fn escape_username(username: &str) -> String {
    let mut escaped = String::with_capacity(username.len());
    for c in username.chars() {
        match c {
            '=' => escaped.push_str("=3D"),
            ',' => escaped.push_str("=2C"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn utf8<'a>(server: &'a [u8], what: &str) -> Result<&'a str, String> {
    std::str::from_utf8(server).map_err(|_| format!("SCRAM {what} message is not UTF-8"))
}

/// `e=<text>`: the server's refusal, reported with its text.
fn server_error(attribute: &str) -> Result<(), String> {
    match attribute.strip_prefix("e=") {
        Some(text) => Err(format!(
            "SCRAM authentication refused by the broker: {text}"
        )),
        None => Ok(()),
    }
}

/// The value of `attribute` if it is `<name>=<value>`.
fn value<'a>(attribute: Option<&'a str>, name: char, message: &str) -> Result<&'a str, String> {
    attribute
        .and_then(|a| a.strip_prefix(name))
        .and_then(|a| a.strip_prefix('='))
        .ok_or_else(|| format!("SCRAM server-first message {message:?} lacks `{name}=` in place"))
}

/// From server-first: the client-final message to send and the server signature to expect.
fn client_final(
    hash: ScramHash,
    password: &str,
    client_first_bare: &str,
    client_nonce: &str,
    server_first: &str,
) -> Result<(String, Vec<u8>), String> {
    let mut attributes = server_first.split(',');
    let first = attributes.next();
    if let Some(first) = first {
        server_error(first)?;
        // RFC 5802 §5.1: a mandatory extension we cannot know must fail the exchange.
        if first.starts_with("m=") {
            return Err("SCRAM broker demands an unsupported mandatory extension (m=)".into());
        }
    }

    let full_nonce = value(first, 'r', server_first)?;
    // The server appends its own part; a nonce not strictly extending ours is a replay or
    // a confused server.
    if full_nonce.len() <= client_nonce.len() || !full_nonce.starts_with(client_nonce) {
        return Err(format!(
            "SCRAM server nonce {full_nonce:?} does not extend the client nonce {client_nonce:?}"
        ));
    }
    if !full_nonce.bytes().all(is_nonce_byte) {
        return Err(format!(
            "SCRAM server nonce {full_nonce:?} is not printable ASCII"
        ));
    }

    let salt_text = value(attributes.next(), 's', server_first)?;
    let salt = STANDARD
        .decode(salt_text)
        .map_err(|e| format!("SCRAM salt {salt_text:?} is not valid base64: {e}"))?;
    if salt.is_empty() {
        return Err("SCRAM salt is empty".into());
    }

    let count_text = value(attributes.next(), 'i', server_first)?;
    let iterations: u32 = count_text
        .parse()
        .map_err(|_| format!("SCRAM iteration count {count_text:?} is not a number"))?;
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(format!(
            "SCRAM iteration count {iterations} is outside 1..={MAX_ITERATIONS}"
        ));
    }
    // Any further attributes are optional extensions, which RFC 5802 says to ignore.

    let salted_password = hash.hi(password.as_bytes(), &salt, iterations)?;
    let client_key = hash.hmac(&salted_password, b"Client Key")?;
    let stored_key = hash.digest(&client_key);
    // "biws" = base64("n,,"): the GS2 header sent in client-first.
    let without_proof = format!("c=biws,r={full_nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let client_signature = hash.hmac(&stored_key, auth_message.as_bytes())?;
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&client_signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let server_key = hash.hmac(&salted_password, b"Server Key")?;
    let server_signature = hash.hmac(&server_key, auth_message.as_bytes())?;

    let client_final = format!("{without_proof},p={}", STANDARD.encode(proof));
    Ok((client_final, server_signature))
}

/// Server-final is `e=<error>` or `v=<ServerSignature>`, optionally followed by extensions.
fn verify_server_final(expected: &[u8], server_final: &str) -> Result<(), String> {
    let first = server_final.split(',').next().unwrap_or_default();
    server_error(first)?;
    let Some(signature) = first.strip_prefix("v=") else {
        return Err(format!(
            "unexpected SCRAM server-final message {server_final:?}: expected v= or e="
        ));
    };
    let received = STANDARD
        .decode(signature)
        .map_err(|e| format!("SCRAM server signature is not valid base64: {e}"))?;
    // Constant time, so a man in the middle learns nothing from how fast we refuse.
    if bool::from(received.as_slice().ct_eq(expected)) {
        Ok(())
    } else {
        Err("SCRAM server signature mismatch: the broker does not hold this credential".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refusal in `result`, failing the test if it was accepted.
    fn refusal(result: Result<Option<Vec<u8>>, String>) -> String {
        match result {
            Err(e) => e,
            Ok(token) => panic!(
                "expected a refusal, got {:?}",
                token.map(|t| String::from_utf8_lossy(&t).into_owned())
            ),
        }
    }

    /// Starts a SCRAM exchange and feeds server-first, returning the client-final text.
    fn to_client_final(
        mechanism: Mechanism,
        username: &str,
        password: &str,
        client_nonce: &str,
        server_first: &str,
    ) -> Result<(Exchange, String), String> {
        let (mut exchange, _) = Exchange::start(mechanism, username, password, client_nonce);
        let Some(token) = exchange.answer(server_first.as_bytes())? else {
            return Err("server-first completed the exchange".into());
        };
        let text = String::from_utf8(token).map_err(|e| e.to_string())?;
        Ok((exchange, text))
    }

    // RFC 7677 §3.
    const SHA256_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SHA256_SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

    #[test]
    fn scram_sha256_rfc7677_example() -> Result<(), String> {
        let (mut exchange, first) =
            Exchange::start(Mechanism::ScramSha256, "user", "pencil", SHA256_NONCE);
        assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");

        let Some(client_final) = exchange.answer(SHA256_SERVER_FIRST.as_bytes())? else {
            return Err("server-first completed the exchange".into());
        };
        assert_eq!(
            String::from_utf8_lossy(&client_final),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );

        let done = exchange.answer(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")?;
        assert_eq!(done, None);
        assert!(matches!(exchange, Exchange::Done));
        // Nothing may follow a completed exchange.
        assert!(refusal(exchange.answer(b"")).contains("after authentication completed"));
        Ok(())
    }

    // SHA-512 vector computed independently with Python's hashlib.pbkdf2_hmac / hmac, for a
    // username that needs escaping and a non-ASCII password (used as raw UTF-8).
    const SHA512_USER: &str = "a=b,c";
    const SHA512_PASSWORD: &str = "pässwörd";
    const SHA512_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";
    const SHA512_SERVER_FIRST: &str =
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
    const SHA512_CLIENT_FINAL: &str = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,\
        p=pJhpEjZ/gNkn41TLUAjnEyP9gxdk+eOq/3mJsdE9nEWXDgnXZBhPem8OuELNwQarCfhd3zEVRL6v+8LZNRYPig==";
    const SHA512_SERVER_FINAL: &str = "v=RtA5/UojcH0AJdpJakq/iBncvnbfonLTDeJSlKIGf4S4CHmqn5upl+zRe1H1ec6octkk5LxGn8zsi6OsvmPqvg==";

    fn sha512_to_client_final() -> Result<(Exchange, String), String> {
        to_client_final(
            Mechanism::ScramSha512,
            SHA512_USER,
            SHA512_PASSWORD,
            SHA512_NONCE,
            SHA512_SERVER_FIRST,
        )
    }

    #[test]
    fn scram_sha512_round_trip() -> Result<(), String> {
        let (_, first) = Exchange::start(
            Mechanism::ScramSha512,
            SHA512_USER,
            SHA512_PASSWORD,
            SHA512_NONCE,
        );
        assert_eq!(first, b"n,,n=a=3Db=2Cc,r=fyko+d2lbbFgONRv9qkxdawL");

        let (mut exchange, client_final) = sha512_to_client_final()?;
        assert_eq!(client_final, SHA512_CLIENT_FINAL);
        assert_eq!(exchange.answer(SHA512_SERVER_FINAL.as_bytes())?, None);
        Ok(())
    }

    #[test]
    fn hi_is_pbkdf2() -> Result<(), String> {
        // PBKDF2-HMAC-SHA512("password", "salt", 2, 64), from Python's hashlib.
        let expected = "e1d9c16aa681708a45f5c7c4e215ceb66e011a2e9f0040713f18aefdb866d53c\
                        f76cab2868a39b9f7840edce4fef5a82be67335c77a6068e04112754f27ccf4e";
        let hi = ScramHash::Sha512.hi(b"password", b"salt", 2)?;
        let hex: String = hi.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
        Ok(())
    }

    #[test]
    fn wrong_server_signature_is_refused() -> Result<(), String> {
        let (mut exchange, _) = sha512_to_client_final()?;
        // The RFC 7677 signature belongs to another exchange (and another hash length).
        let error = refusal(exchange.answer(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="));
        assert!(error.contains("signature mismatch"), "{error}");
        assert!(matches!(exchange, Exchange::Failed));
        assert!(
            refusal(exchange.answer(SHA512_SERVER_FINAL.as_bytes())).contains("already failed")
        );

        // Same length, one bit off.
        let (mut exchange, _) = sha512_to_client_final()?;
        let mut signature = STANDARD
            .decode(&SHA512_SERVER_FINAL[2..])
            .map_err(|e| e.to_string())?;
        signature[0] ^= 1;
        let tampered = format!("v={}", STANDARD.encode(signature));
        assert!(refusal(exchange.answer(tampered.as_bytes())).contains("signature mismatch"));
        Ok(())
    }

    #[test]
    fn server_error_is_refused_with_its_text() -> Result<(), String> {
        let (mut exchange, _) = sha512_to_client_final()?;
        let error = refusal(exchange.answer(b"e=invalid-proof"));
        assert!(error.contains("invalid-proof"), "{error}");
        Ok(())
    }

    #[test]
    fn server_nonce_must_extend_ours() {
        for server_first in [
            "r=someoneElsesNonce123,s=QSXCR+Q6sek8bf92,i=4096",
            // Our nonce alone: the server added nothing.
            "r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096",
        ] {
            let (mut exchange, _) = Exchange::start(
                Mechanism::ScramSha512,
                SHA512_USER,
                SHA512_PASSWORD,
                SHA512_NONCE,
            );
            let error = refusal(exchange.answer(server_first.as_bytes()));
            assert!(error.contains("does not extend"), "{error}");
        }
    }

    #[test]
    fn malformed_server_first_is_refused() {
        let cases = [
            (
                "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=0",
                "iteration count",
            ),
            (
                "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=4294967295",
                "iteration count",
            ),
            (
                "r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=many",
                "not a number",
            ),
            ("r=fyko+d2lbbFgONRv9qkxdawLx,s=not*base64,i=4096", "base64"),
            ("r=fyko+d2lbbFgONRv9qkxdawLx,s=,i=4096", "salt is empty"),
            ("r=fyko+d2lbbFgONRv9qkxdawLx,i=4096", "lacks `s=`"),
            (
                "m=ext,r=fyko+d2lbbFgONRv9qkxdawLx,s=QSXCR+Q6sek8bf92,i=4096",
                "m=",
            ),
            ("e=other-error", "other-error"),
        ];
        for (server_first, reason) in cases {
            let (mut exchange, _) = Exchange::start(
                Mechanism::ScramSha512,
                SHA512_USER,
                SHA512_PASSWORD,
                SHA512_NONCE,
            );
            let error = refusal(exchange.answer(server_first.as_bytes()));
            assert!(error.contains(reason), "{server_first}: {error}");
        }
    }

    #[test]
    fn one_iteration_is_accepted() -> Result<(), String> {
        let (_, client_final) = to_client_final(
            Mechanism::ScramSha256,
            "user",
            "pencil",
            SHA256_NONCE,
            "r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1",
        )?;
        assert!(client_final.starts_with("c=biws,r=rOprNGfwEbeRWgbNEkqOx,p="));
        Ok(())
    }

    #[test]
    fn plain_token_and_answer() -> Result<(), String> {
        let (mut exchange, token) = Exchange::start(Mechanism::Plain, "user", "pass", "unused");
        assert_eq!(token, b"\0user\0pass");
        assert_eq!(exchange.answer(b"")?, None);
        assert!(matches!(exchange, Exchange::Done));
        Ok(())
    }

    #[test]
    fn mechanism_parse() -> Result<(), String> {
        assert_eq!(Mechanism::parse("scram-sha-512")?, Mechanism::ScramSha512);
        assert_eq!(Mechanism::parse("PLAIN")?, Mechanism::Plain);
        assert_eq!(Mechanism::parse("Scram-Sha-256")?.name(), "SCRAM-SHA-256");
        let error = Mechanism::parse("GSSAPI").err().unwrap_or_default();
        assert!(error.contains("GSSAPI"), "{error}");
        assert!(error.contains("SCRAM-SHA-512"), "{error}");
        Ok(())
    }

    #[test]
    fn username_escaping() {
        assert_eq!(format!("n={}", escape_username("a=b,c")), "n=a=3Db=2Cc");
        assert_eq!(escape_username("=,=="), "=3D=2C=3D=3D");
    }

    #[test]
    fn nonce_is_fresh_and_usable() -> Result<(), String> {
        let (a, b) = (nonce()?, nonce()?);
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.bytes().all(is_nonce_byte), "{a}");
        Ok(())
    }
}
