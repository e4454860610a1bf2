//! Module and field metadata of the BTEC_* custom modules (docs/sandbox.md "The college"). The rest of the team codes
//! against these
//! names, types and flags; the fake validates writes with them and serves them on `/settings/fields`.

use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Textarea,
    Email,
    Phone,
    Picklist(&'static [&'static str]),
    Integer,
    Double,
    Currency,
    Percent,
    Date,
    Boolean,
    /// A lookup into the named module.
    Lookup(&'static str),
}

impl FieldType {
    /// The `data_type` Zoho reports in field metadata.
    pub fn data_type(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Textarea => "textarea",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Picklist(_) => "picklist",
            FieldType::Integer => "integer",
            FieldType::Double => "double",
            FieldType::Currency => "currency",
            FieldType::Percent => "percent",
            FieldType::Date => "date",
            FieldType::Boolean => "boolean",
            FieldType::Lookup(_) => "lookup",
        }
    }

    /// Maximum length Zoho allows for the type (characters, or digits for numbers).
    pub fn length(self) -> usize {
        match self {
            FieldType::Text | FieldType::Picklist(_) | FieldType::Lookup(_) => 255,
            FieldType::Textarea => 32000,
            FieldType::Email => 100,
            FieldType::Phone => 30,
            FieldType::Integer => 9,
            FieldType::Double | FieldType::Currency => 16,
            FieldType::Percent => 5,
            FieldType::Date => 20,
            FieldType::Boolean => 5,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    pub api_name: &'static str,
    pub ty: FieldType,
    pub mandatory: bool,
    /// "Do not allow duplicates": a clash on write gives DUPLICATE_DATA.
    pub unique: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct ModuleDef {
    pub api_name: &'static str,
    pub singular: &'static str,
    pub plural: &'static str,
    /// The module's own id, as `/settings/modules` and watch answers report it (`resource_id`).
    pub id: &'static str,
    pub fields: &'static [FieldDef],
}

impl ModuleDef {
    pub fn field(&self, api_name: &str) -> Option<&'static FieldDef> {
        self.fields.iter().find(|f| f.api_name == api_name)
    }
}

const fn f(api_name: &'static str, ty: FieldType) -> FieldDef {
    FieldDef { api_name, ty, mandatory: false, unique: false }
}
const fn mandatory(api_name: &'static str, ty: FieldType) -> FieldDef {
    FieldDef { api_name, ty, mandatory: true, unique: false }
}
const fn unique(api_name: &'static str, ty: FieldType) -> FieldDef {
    FieldDef { api_name, ty, mandatory: false, unique: true }
}

use FieldType::*;

const NAME: FieldDef = mandatory("Name", Text);
const STUDENT: FieldDef = f("Student", Lookup("BTEC_Students"));
const CLASS: FieldDef = f("Class", Lookup("BTEC_Classes"));
const UNIT: FieldDef = f("Unit", Lookup("BTEC_Units"));

pub const STUDENT_STATUS: &[&str] = &["Active", "Inactive", "Suspended", "Withdrawn", "Graduated"];
pub const CLASS_STATUS: &[&str] = &["Active", "Inactive", "Completed"];
pub const ENROLLMENT_STATUS: &[&str] = &["Active", "Withdrawn", "Completed"];
pub const REGISTRATION_STATUS: &[&str] = &["Active", "Completed", "Withdrawn", "Cancelled"];
pub const CURRENCIES: &[&str] = &["USD", "GBP", "EUR", "AED", "INR"];
pub const PAYMENT_STATUS: &[&str] = &["Paid", "Due", "Overdue"];
pub const PAYMENT_METHODS: &[&str] = &["Cash", "Card", "Bank Transfer", "Cheque"];
pub const GRADES: &[&str] = &["Pass", "Merit", "Distinction", "Refer"];

pub static MODULES: &[ModuleDef] = &[
    ModuleDef {
        api_name: "BTEC_Units",
        singular: "BTEC Unit",
        plural: "BTEC Units",
        id: "5847596000000002101",
        fields: &[
            NAME,
            unique("Unit_Code", Text),
            f("Unit_Name", Text),
            f("Level", Text),
            f("Credits", Integer),
            f("Grading_Criteria", Textarea),
        ],
    },
    ModuleDef {
        api_name: "BTEC_Teachers",
        singular: "BTEC Teacher",
        plural: "BTEC Teachers",
        id: "5847596000000002102",
        fields: &[
            NAME,
            f("First_Name", Text),
            mandatory("Last_Name", Text),
            f("Academic_Email", Email),
            unique("Teacher_ID_Number", Text),
            f("Teacher_Moodle_ID", Text),
        ],
    },
    ModuleDef {
        api_name: "BTEC_Students",
        singular: "BTEC Student",
        plural: "BTEC Students",
        id: "5847596000000002103",
        fields: &[
            NAME,
            f("First_Name", Text),
            mandatory("Last_Name", Text),
            // Not unique: the college's real data has duplicate academic emails.
            f("Academic_Email", Email),
            unique("Student_ID_Number", Text),
            f("Phone", Phone),
            f("Status", Picklist(STUDENT_STATUS)),
            f("Student_Moodle_ID", Text),
        ],
    },
    ModuleDef {
        api_name: "BTEC_Classes",
        singular: "BTEC Class",
        plural: "BTEC Classes",
        id: "5847596000000002104",
        fields: &[
            NAME,
            f("Class_Name", Text),
            unique("Class_Short_Name", Text),
            f("Program", Text),
            f("Teacher", Lookup("BTEC_Teachers")),
            UNIT,
            f("Start_Date", Date),
            f("End_Date", Date),
            f("Status", Picklist(CLASS_STATUS)),
            f("Moodle_Course_ID", Text),
        ],
    },
    ModuleDef {
        api_name: "BTEC_Enrollments",
        singular: "BTEC Enrollment",
        plural: "BTEC Enrollments",
        id: "5847596000000002105",
        fields: &[
            NAME,
            STUDENT,
            CLASS,
            f("Status", Picklist(ENROLLMENT_STATUS)),
            f("Start_Date", Date),
            f("End_Date", Date),
        ],
    },
    ModuleDef {
        api_name: "BTEC_Registrations",
        singular: "BTEC Registration",
        plural: "BTEC Registrations",
        id: "5847596000000002106",
        fields: &[
            NAME,
            STUDENT,
            f("Program", Text),
            f("Registration_Date", Date),
            f("Total_Fee", Currency),
            f("Scholarship_Percent", Percent),
            f("Currency", Picklist(CURRENCIES)),
            f("Status", Picklist(REGISTRATION_STATUS)),
        ],
    },
    ModuleDef {
        api_name: "BTEC_Payments",
        singular: "BTEC Payment",
        plural: "BTEC Payments",
        id: "5847596000000002107",
        fields: &[
            NAME,
            STUDENT,
            f("Registration", Lookup("BTEC_Registrations")),
            f("Amount", Currency),
            f("Payment_Date", Date),
            f("Due_Date", Date),
            f("Status", Picklist(PAYMENT_STATUS)),
            f("Method", Picklist(PAYMENT_METHODS)),
        ],
    },
    ModuleDef {
        api_name: "BTEC_Grades",
        singular: "BTEC Grade",
        plural: "BTEC Grades",
        id: "5847596000000002108",
        fields: &[
            NAME,
            STUDENT,
            CLASS,
            UNIT,
            f("Grade", Picklist(GRADES)),
            f("Moodle_Grade", Double),
            f("Graded_Date", Date),
        ],
    },
    ModuleDef {
        api_name: "BTEC_Attendance",
        singular: "BTEC Attendance",
        plural: "BTEC Attendance",
        id: "5847596000000002109",
        fields: &[NAME, STUDENT, CLASS, f("Date", Date), f("Present", Boolean)],
    },
];

/// Fields every record carries that the server manages; writes to them are ignored.
pub const SYSTEM_FIELDS: &[&str] = &["id", "Created_Time", "Modified_Time", "Created_By", "Modified_By", "Owner"];

pub fn module(api_name: &str) -> Option<&'static ModuleDef> {
    MODULES.iter().find(|m| m.api_name == api_name)
}

fn label(api_name: &str) -> String {
    api_name.replace('_', " ")
}

/// One module as `/settings/modules` lists it.
pub fn module_json(m: &ModuleDef) -> Value {
    json!({
        "api_name": m.api_name,
        "module_name": m.api_name,
        "singular_label": m.singular,
        "plural_label": m.plural,
        "id": m.id,
        "generated_type": "custom",
        "api_supported": true,
        "creatable": true,
        "editable": true,
        "deletable": true,
        "viewable": true,
        "visibility": 1,
    })
}

/// The fields of one module as `/settings/fields?module=` lists them, system fields included.
pub fn fields_json(m: &ModuleDef) -> Value {
    let mut out: Vec<Value> = Vec::new();
    for (i, fd) in m.fields.iter().enumerate() {
        let picklist: Vec<Value> = match fd.ty {
            FieldType::Picklist(values) => {
                values.iter().map(|v| json!({"display_value": v, "actual_value": v})).collect()
            }
            _ => Vec::new(),
        };
        let lookup = match fd.ty {
            FieldType::Lookup(target) => {
                let target_id = module(target).map(|t| t.id).unwrap_or_default();
                json!({"module": {"api_name": target, "id": target_id}, "display_label": label(fd.api_name)})
            }
            _ => json!({}),
        };
        out.push(json!({
            "api_name": fd.api_name,
            "field_label": label(fd.api_name),
            "display_label": label(fd.api_name),
            "data_type": fd.ty.data_type(),
            "length": fd.ty.length(),
            "id": format!("{}{:03}", &m.id[..16], i + 10),
            "custom_field": fd.api_name != "Name",
            "system_mandatory": fd.mandatory,
            "unique": if fd.unique { json!({"casesensitive": false}) } else { json!({}) },
            "read_only": false,
            "pick_list_values": picklist,
            "lookup": lookup,
        }));
    }
    for (i, (name, ty)) in [
        ("Created_Time", "datetime"),
        ("Modified_Time", "datetime"),
        ("Created_By", "ownerlookup"),
        ("Modified_By", "ownerlookup"),
    ]
    .into_iter()
    .enumerate()
    {
        out.push(json!({
            "api_name": name,
            "field_label": label(name),
            "display_label": label(name),
            "data_type": ty,
            "length": 120,
            "id": format!("{}{:03}", &m.id[..16], i + 1),
            "custom_field": false,
            "system_mandatory": false,
            "unique": {},
            "read_only": true,
            "pick_list_values": [],
            "lookup": {},
        }));
    }
    json!({ "fields": out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::ZOHO_MODULES;

    #[test]
    fn every_seed_module_has_a_schema_with_a_mandatory_name() {
        for name in ZOHO_MODULES {
            let m = module(name).unwrap_or_else(|| panic!("{name} has no schema"));
            assert!(m.field("Name").is_some_and(|f| f.mandatory));
        }
        assert_eq!(MODULES.len(), ZOHO_MODULES.len());
    }

    #[test]
    fn lookups_point_at_served_modules() {
        for m in MODULES {
            for fd in m.fields {
                if let FieldType::Lookup(target) = fd.ty {
                    assert!(module(target).is_some(), "{}.{} -> {target}", m.api_name, fd.api_name);
                }
            }
        }
    }
}
