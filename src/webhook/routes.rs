//! The receiver's routes: which path is which source and entity, and what a wrong path or method is.

/// Route entity → Zoho module. The entity names the dirty mark; the module must match the payload's.
pub const ZOHO_ENTITIES: &[(&str, &str)] = &[
    ("student", "BTEC_Students"),
    ("teacher", "BTEC_Teachers"),
    ("registration", "BTEC_Registrations"),
    ("class", "BTEC_Classes"),
    ("enrollment", "BTEC_Enrollments"),
    ("payment", "BTEC_Payments"),
    ("grade", "BTEC_Grades"),
    ("unit", "BTEC_Units"),
];

/// Entities the Moodle plugin reports.
pub const MOODLE_ENTITIES: &[&str] = &["enrollment", "grade"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Zoho,
    Moodle,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Zoho => "zoho",
            Source::Moodle => "moodle",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A Zoho workflow webhook for one entity: (entity, module).
    Zoho {
        entity: &'static str,
        module: &'static str,
    },
    /// A Zoho Notification API (watch channel) callback.
    ZohoNotify,
    Moodle {
        entity: &'static str,
    },
    Health,
    Stats,
}

impl Route {
    pub fn source(self) -> Option<Source> {
        match self {
            Route::Zoho { .. } | Route::ZohoNotify => Some(Source::Zoho),
            Route::Moodle { .. } => Some(Source::Moodle),
            Route::Health | Route::Stats => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed { allow: &'static str },
}

/// The module's entity, for Notification API callbacks (which name the module, not the entity).
pub fn entity_of_module(module: &str) -> Option<&'static str> {
    ZOHO_ENTITIES.iter().find(|(_, m)| m.eq_ignore_ascii_case(module)).map(|(e, _)| *e)
}

/// Resolves a method and a request URL (path and optional query) to a route.
pub fn resolve(method: &str, url: &str) -> Result<Route, RouteError> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let path = path.trim_end_matches('/');
    let rest = path.strip_prefix("/api").unwrap_or(path);
    let rest = rest.strip_prefix("/v1/events/").ok_or(RouteError::NotFound)?;
    let route = match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["health"] => Route::Health,
        ["stats"] => Route::Stats,
        ["zoho", "notify"] => Route::ZohoNotify,
        ["zoho", entity] => {
            let (entity, module) = ZOHO_ENTITIES.iter().find(|(e, _)| e == entity).ok_or(RouteError::NotFound)?;
            Route::Zoho { entity, module }
        }
        ["moodle", entity] => {
            Route::Moodle { entity: MOODLE_ENTITIES.iter().find(|e| *e == entity).ok_or(RouteError::NotFound)? }
        }
        _ => return Err(RouteError::NotFound),
    };
    let allowed = match route {
        Route::Health | Route::Stats => "GET",
        _ => "POST",
    };
    let method_ok = method.eq_ignore_ascii_case(allowed) || (allowed == "GET" && method.eq_ignore_ascii_case("HEAD"));
    if method_ok {
        Ok(route)
    } else {
        Err(RouteError::MethodNotAllowed { allow: allowed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_prefix() {
        for (entity, module) in ZOHO_ENTITIES {
            for prefix in ["", "/api"] {
                let url = format!("{prefix}/v1/events/zoho/{entity}?x=1");
                assert_eq!(resolve("POST", &url), Ok(Route::Zoho { entity, module }), "{url}");
            }
        }
        assert_eq!(resolve("POST", "/v1/events/moodle/grade"), Ok(Route::Moodle { entity: "grade" }));
        assert_eq!(resolve("POST", "/api/v1/events/moodle/enrollment/"), Ok(Route::Moodle { entity: "enrollment" }));
        assert_eq!(resolve("POST", "/v1/events/zoho/notify?src=watch"), Ok(Route::ZohoNotify));
        assert_eq!(resolve("GET", "/v1/events/health"), Ok(Route::Health));
        assert_eq!(resolve("GET", "/api/v1/events/stats"), Ok(Route::Stats));
    }

    #[test]
    fn unknown_and_wrong_method() {
        for url in [
            "/",
            "/v1/events/zoho/teachers",
            "/v1/events/moodle/student",
            "/v2/events/zoho/student",
            "/v1/events/zoho/student/1",
        ] {
            assert_eq!(resolve("POST", url), Err(RouteError::NotFound), "{url}");
        }
        assert_eq!(resolve("GET", "/v1/events/zoho/student"), Err(RouteError::MethodNotAllowed { allow: "POST" }));
        assert_eq!(resolve("POST", "/v1/events/health"), Err(RouteError::MethodNotAllowed { allow: "GET" }));
    }

    #[test]
    fn modules_map_back() {
        assert_eq!(entity_of_module("BTEC_Students"), Some("student"));
        assert_eq!(entity_of_module("btec_units"), Some("unit"));
        assert_eq!(entity_of_module("Leads"), None);
    }
}
