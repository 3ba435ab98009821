//! The HTML templates, compiled into the binary. minijinja escapes every value in `.html`
//! templates by default, which is what keeps attacker-controlled text (user agents above all)
//! inert in the pages.

use minijinja::Environment;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("home.html", include_str!("../templates/home.html")),
    (
        "_credentials.html",
        include_str!("../templates/_credentials.html"),
    ),
    ("created.html", include_str!("../templates/created.html")),
    ("manage.html", include_str!("../templates/manage.html")),
    (
        "_exposures.html",
        include_str!("../templates/_exposures.html"),
    ),
    ("deleted.html", include_str!("../templates/deleted.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("unlock.html", include_str!("../templates/unlock.html")),
    (
        "console/layout.html",
        include_str!("../templates/console/layout.html"),
    ),
    (
        "console/login.html",
        include_str!("../templates/console/login.html"),
    ),
    (
        "console/overview.html",
        include_str!("../templates/console/overview.html"),
    ),
    (
        "console/tokens.html",
        include_str!("../templates/console/tokens.html"),
    ),
    (
        "console/alerts.html",
        include_str!("../templates/console/alerts.html"),
    ),
    (
        "console/audit.html",
        include_str!("../templates/console/audit.html"),
    ),
    (
        "console/api_keys.html",
        include_str!("../templates/console/api_keys.html"),
    ),
];

pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .expect("built-in templates parse");
    }
    env
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_html() {
        let env = super::environment();
        let html = env
            .get_template("error.html")
            .unwrap()
            .render(minijinja::context! { status => 400, message => "<script>alert(1)</script>" })
            .unwrap();
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>alert"));
    }
}
