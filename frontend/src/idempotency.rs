//! Idempotency keys: one fresh random key each time the agent opens the confirmation, so the
//! same intent retried (a lost answer, a renewed token) is refunded once.

use shared::IdempotencyKey;

/// 128 bits from the browser's CSPRNG, as the key's 32 hex digits. `getRandomValues` works
/// on plain-http host pages too, unlike `randomUUID`.
pub fn new_key() -> IdempotencyKey {
    let mut bytes = [0u8; 16];
    let filled = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .is_some_and(|crypto| crypto.get_random_values_with_u8_array(&mut bytes).is_ok());
    if !filled {
        // No Web Crypto at all (not a browser we support): still unique per page load.
        let now = js_sys::Date::now().to_bits().to_le_bytes();
        let random = js_sys::Math::random().to_bits().to_le_bytes();
        bytes[..8].copy_from_slice(&now);
        bytes[8..].copy_from_slice(&random);
    }
    IdempotencyKey::from_random(u128::from_le_bytes(bytes))
}
