//! Exposures as stored: a decoy key seen in public, one row per token and source.

use canarykeys_core::TokenId;

/// Where an exposure was learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExposureSource {
    /// An AWS Health event (`AWS_RISK_CREDENTIALS_EXPOSED`, `AWS_RISK_IAM_QUARANTINE`).
    Health,
    /// The safety net found AWS's quarantine policy attached to the decoy user.
    Quarantine,
}

impl ExposureSource {
    pub const ALL: [Self; 2] = [Self::Health, Self::Quarantine];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Quarantine => "quarantine",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// One exposure. `description` and `location` quote AWS, which quotes wherever the key was
/// published: attacker-influenced text, stored as received and escaped wherever shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExposureRecord {
    pub id: String,
    pub token_id: TokenId,
    pub source: ExposureSource,
    /// The Health event type, or the quarantine policy's name.
    pub event_type: String,
    /// The Health event ARN or policy ARN: a second copy of the same one is not a new sighting.
    pub last_ref: String,
    pub description: String,
    pub location: Option<String>,
    /// When AWS says it happened (unix ms).
    pub event_time: i64,
    /// When we first and last learned of it (unix ms).
    pub first_seen: i64,
    pub last_seen: i64,
    pub seen_count: i64,
    /// The AWS document it came from, as JSON.
    pub raw: String,
}

/// What recording an exposure did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExposureOutcome {
    /// The token's first exposure from this source: stored with its outbox rows.
    New,
    /// A later sighting (a new Health event, say): counted on the existing row, no alert.
    Updated,
    /// The same event or policy again (a backup-region copy, the next safety-net round):
    /// only `last_seen` moves.
    Repeat,
}
