//! `core_webservice_get_site_info`: "ping + who am I + which functions my token allows".

use serde_json::{json, Map, Value};

use super::{Ctx, Function, CORE_VERSION};
use crate::moodle::errors::WsError;
use crate::moodle::params::{list, req, with, Desc, Req, P};
use crate::moodle::state::{format_string, ADMIN_ID};

pub const RELEASE: &str = "5.1+ (Build: 20251017)";

pub static FUNCTIONS: &[Function] = &[Function {
    name: "core_webservice_get_site_info",
    component_version: CORE_VERSION,
    schema,
    run,
    write: false,
    transactional: false,
    plugin: false,
}];

fn schema() -> Vec<(&'static str, Desc)> {
    // Deprecated and ignored, but still declared: sending it is not an error.
    vec![("serviceshortnames", with(list(req(P::AlphaNumExt)), Req::Default(json!([]))))]
}

fn run(ctx: &mut Ctx, _args: &Map<String, Value>) -> Result<Value, WsError> {
    let user = ctx.state.users.get(&ADMIN_ID).cloned();
    let (username, first, last) = user
        .map(|u| (u.username, u.firstname, u.lastname))
        .unwrap_or_else(|| ("admin".into(), "Admin".into(), "User".into()));
    let functions: Vec<Value> = service_functions(ctx.opts)
        .into_iter()
        .map(|f| json!({"name": f.name, "version": f.component_version}))
        .collect();
    Ok(json!({
        "sitename": format_string("zmsync sandbox Moodle", ctx.raw),
        "username": username,
        "firstname": first,
        "lastname": last,
        "fullname": format!("{first} {last}"),
        "lang": "en",
        "userid": ADMIN_ID,
        "siteurl": ctx.siteurl,
        "userpictureurl": format!("{}/theme/image.php/boost/core/1/u/f1", ctx.siteurl),
        "functions": functions,
        "downloadfiles": 0,
        "uploadfiles": 0,
        "release": RELEASE,
        "version": CORE_VERSION,
        "mobilecssurl": "",
        "advancedfeatures": [{"name": "usecomments", "value": 1}, {"name": "enableoutcomes", "value": 0}],
        "usercanmanageownfiles": true,
        "userquota": 104857600,
        "usermaxuploadfilesize": 104857600,
        "userhomepage": 1,
        "siteid": 1,
        "sitecalendartype": "gregorian",
        "usercalendartype": "gregorian",
        "userissiteadmin": ctx.opts.token_is_admin,
        "theme": "boost",
        "limitconcurrentlogins": 0,
        "policyagreed": 0
    }))
}

/// The functions of the token's service as the options shape it.
pub fn service_functions(opts: &crate::moodle::MoodleOptions) -> Vec<&'static Function> {
    super::all()
        .into_iter()
        .filter(|f| opts.plugin_installed || !f.plugin)
        .filter(|f| !opts.missing_functions.iter().any(|m| m == f.name))
        .collect()
}
