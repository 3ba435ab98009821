//! The credentials a token hands out, and the files they are downloaded as: the AWS CLI's
//! `credentials` and `config` files, the console's CSV, and a shell `export` snippet.

use std::fmt;
use std::str::FromStr;

use crate::{AccessKeyId, AccountId, IamUserName, Invalid, Region, SecretAccessKey, SessionPart};

/// The AWS CLI's `output` setting.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OutputFormat {
    Json,
    Text,
    Table,
    Yaml,
}

impl OutputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Text => "text",
            Self::Table => "table",
            Self::Yaml => "yaml",
        }
    }
}

impl FromStr for OutputFormat {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            "table" => Ok(Self::Table),
            "yaml" => Ok(Self::Yaml),
            _ => Err(Invalid::new("output is one of json, text, table, yaml")),
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything an AWS client needs to use a decoy key, and who AWS will say it belongs to.
#[derive(Clone, Debug)]
pub struct AwsCredentials {
    pub access_key_id: AccessKeyId,
    pub secret_access_key: SecretAccessKey,
    pub region: Region,
    pub output: OutputFormat,
    pub username: IamUserName,
    pub account_id: AccountId,
    /// The session token and expiry, for session credentials (`ASIA…`).
    pub session: Option<SessionPart>,
}

/// The shapes the credentials can be downloaded in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CredentialsFormat {
    /// `~/.aws/credentials`, as `aws configure` writes it.
    Credentials,
    /// `~/.aws/config`, with the region and output.
    Config,
    /// The CSV the AWS console offers when a key is created.
    Csv,
    /// `export AWS_...=` lines for a shell.
    Env,
}

impl CredentialsFormat {
    pub const ALL: [Self; 4] = [Self::Credentials, Self::Config, Self::Csv, Self::Env];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credentials => "credentials",
            Self::Config => "config",
            Self::Csv => "csv",
            Self::Env => "env",
        }
    }

    /// The file name a browser saves it under: the first two are what the AWS CLI looks for
    /// in `~/.aws/`; the CSV is named as the console names it.
    pub fn file_name(self, username: &IamUserName) -> String {
        match self {
            Self::Credentials => "credentials".into(),
            Self::Config => "config".into(),
            Self::Csv => format!("{username}_accessKeys.csv"),
            Self::Env => "aws-env.sh".into(),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            _ => "text/plain; charset=utf-8",
        }
    }

    pub fn render(self, c: &AwsCredentials) -> String {
        let id = c.access_key_id.as_str();
        let secret = c.secret_access_key.expose();
        let token = c.session.as_ref().map(|s| s.token.expose());
        match (self, token) {
            // As `aws configure set` and SSO tools write a session: the token on its own line.
            (Self::Credentials, Some(token)) => format!(
                "[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\naws_session_token = {token}\n"
            ),
            (Self::Csv, Some(token)) => format!(
                "Access key ID,Secret access key,Session token\n{id},{secret},{token}\n"
            ),
            (Self::Env, Some(token)) => format!(
                "export AWS_ACCESS_KEY_ID={id}\nexport AWS_SECRET_ACCESS_KEY={secret}\nexport AWS_SESSION_TOKEN={token}\nexport AWS_DEFAULT_REGION={}\n",
                c.region
            ),
            (_, _) => self.render_key(c, id, secret),
        }
    }

    fn render_key(self, c: &AwsCredentials, id: &str, secret: &str) -> String {
        match self {
            Self::Credentials => format!(
                "[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"
            ),
            Self::Config => format!(
                "[default]\nregion = {}\noutput = {}\n",
                c.region, c.output
            ),
            Self::Csv => format!("Access key ID,Secret access key\n{id},{secret}\n"),
            Self::Env => format!(
                "export AWS_ACCESS_KEY_ID={id}\nexport AWS_SECRET_ACCESS_KEY={secret}\nexport AWS_DEFAULT_REGION={}\n",
                c.region
            ),
        }
    }
}

impl FromStr for CredentialsFormat {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| Invalid::new("format is one of credentials, config, csv, env"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> AwsCredentials {
        let account = AccountId::parse("123456789012").unwrap();
        AwsCredentials {
            access_key_id: AccessKeyId::generate_for(account),
            secret_access_key: SecretAccessKey::parse("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
                .unwrap(),
            region: Region::parse("eu-west-1").unwrap(),
            output: OutputFormat::Json,
            username: IamUserName::parse("svc-backup").unwrap(),
            account_id: account,
            session: None,
        }
    }

    #[test]
    fn session_formats_carry_the_token() {
        let mut c = creds();
        let token = crate::SessionToken::generate();
        c.session = Some(SessionPart {
            token: token.clone(),
            expires_at: 0,
        });
        let file = CredentialsFormat::Credentials.render(&c);
        assert!(file.ends_with(&format!("aws_session_token = {}\n", token.expose())));
        let env = CredentialsFormat::Env.render(&c);
        assert!(env.contains(&format!("export AWS_SESSION_TOKEN={}\n", token.expose())));
        assert!(CredentialsFormat::Csv.render(&c).contains(token.expose()));
        assert!(!CredentialsFormat::Config
            .render(&c)
            .contains(token.expose()));
    }

    #[test]
    fn credentials_file_is_what_aws_configure_writes() {
        let c = creds();
        let text = CredentialsFormat::Credentials.render(&c);
        assert_eq!(
            text,
            format!(
                "[default]\naws_access_key_id = {}\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
                c.access_key_id
            )
        );
    }

    #[test]
    fn other_formats() {
        let c = creds();
        assert_eq!(
            CredentialsFormat::Config.render(&c),
            "[default]\nregion = eu-west-1\noutput = json\n"
        );
        let csv = CredentialsFormat::Csv.render(&c);
        assert!(csv.starts_with("Access key ID,Secret access key\n"));
        assert!(csv.contains(&format!("{},wJalr", c.access_key_id)));
        let env = CredentialsFormat::Env.render(&c);
        assert!(env.contains("export AWS_SECRET_ACCESS_KEY=wJalr"));
        assert!(env.contains("export AWS_DEFAULT_REGION=eu-west-1"));
        assert_eq!(
            CredentialsFormat::Csv.file_name(&c.username),
            "svc-backup_accessKeys.csv"
        );
    }

    #[test]
    fn formats_parse() {
        for f in CredentialsFormat::ALL {
            assert_eq!(f.as_str().parse::<CredentialsFormat>().unwrap(), f);
        }
        assert!("xml".parse::<CredentialsFormat>().is_err());
        assert_eq!("yaml".parse::<OutputFormat>().unwrap(), OutputFormat::Yaml);
        assert!("csv".parse::<OutputFormat>().is_err());
    }
}
