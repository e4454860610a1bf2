//! The college's vocabulary: names, programs and unit titles, plus the small text helpers that make
//! realistic mess (mixed-case emails, phone formats, offsets). Lists are fixed so a seed always gives the
//! same college.

/// First names, with accents and non-Latin-1 letters on purpose: the sync must carry them unchanged.
pub const FIRST_NAMES: &[&str] = &[
    "John",
    "Zoë",
    "Aoife",
    "Siobhán",
    "Mohammed",
    "Priya",
    "Chloé",
    "José",
    "Łukasz",
    "Anaïs",
    "Björn",
    "Oluwaseun",
    "Mei",
    "Fatima",
    "Liam",
    "Olivia",
    "Noah",
    "Emma",
    "Ava",
    "Isla",
    "Amelia",
    "Ethan",
    "Jack",
    "Harry",
    "Sophia",
    "Grace",
    "Aarav",
    "Ananya",
    "Yusuf",
    "Zainab",
    "Ciarán",
    "Renée",
    "Jürgen",
    "Dmitri",
    "Hùng",
    "Thảo",
    "Niamh",
    "Oscar",
    "Leila",
    "Kwame",
    "Sakura",
    "Mateo",
    "Freya",
    "Ibrahim",
    "Chiara",
    "Søren",
    "Agnieszka",
    "Tomás",
    "Ellie",
    "Daniel",
];

pub const LAST_NAMES: &[&str] = &[
    "Smith",
    "O'Brien",
    "Nguyễn",
    "Müller",
    "García",
    "D'Souza",
    "Kowalski",
    "Patel",
    "Khan",
    "Ó Súilleabháin",
    "MacDonald",
    "Okafor",
    "Singh",
    "Chen",
    "Williams",
    "Brown",
    "Jones",
    "Taylor",
    "Wilson",
    "Davies",
    "Evans",
    "Thomas",
    "Roberts",
    "Johnson",
    "Lewis",
    "Walker",
    "O'Connor",
    "Ng",
    "van der Berg",
    "Li",
    "da Silva",
    "Wang",
    "Al-Sayed",
    "Trần",
    "Lê",
    "Øvergård",
    "Fernández",
    "Nowak",
    "Ahmed",
    "Hughes",
    "Begum",
    "Murphy",
    "Kim",
    "Rossi",
    "Dubois",
    "Mensah",
    "Yılmaz",
    "Schäfer",
    "Hall",
    "Wright",
];

pub const PROGRAMS: &[&str] = &[
    "BTEC Level 3 Extended Diploma in IT",
    "BTEC Level 3 National Diploma in Business",
    "BTEC Level 4 HNC in Computing",
    "BTEC Level 5 HND in Computing",
    "BTEC Level 5 Diploma in IT",
    "BTEC Level 3 Diploma in Engineering",
    "BTEC Level 5 HND in Business",
    "BTEC Level 3 Extended Diploma in Health & Social Care",
];

/// Unit titles; `&` and a `<` on purpose (Moodle escapes them in course names unless asked not to).
pub const UNIT_TITLES: &[&str] = &[
    "Programming",
    "Networking & Security",
    "Database Design & Development",
    "Professional Practice",
    "Website Design & Development",
    "Cyber Security",
    "Business Intelligence",
    "Cloud Computing",
    "Management Information Systems",
    "Discrete Maths",
    "Data Structures & Algorithms",
    "Software Development Lifecycles",
    "Marketing Essentials",
    "Human Resource Management",
    "Accounting Principles",
    "Engineering Principles",
    "Health, Safety & Welfare",
    "Digital Systems < Basics",
    "Research Project",
    "Applied Anatomy & Physiology",
];

pub const CODE_LETTERS: &[char] = &['A', 'D', 'F', 'H', 'J', 'K', 'L', 'M', 'R', 'T', 'Y'];

/// Folds a name to ASCII letters and digits for an email local part (`Zoë O'Brien` → `zoe`, `obrien`).
pub fn ascii_fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        let folded = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ả' | 'ạ' | 'ă' | 'ầ' | 'ấ' | 'ậ' | 'ẩ' | 'ẫ' | 'ắ' | 'ằ' | 'ặ' => {
                'a'
            }
            'ç' => 'c',
            'đ' => 'd',
            'è' | 'é' | 'ê' | 'ë' | 'ễ' | 'ệ' | 'ế' => 'e',
            'ì' | 'í' | 'î' | 'ï' | 'ı' => 'i',
            'ł' => 'l',
            'ñ' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ơ' | 'ờ' | 'ớ' | 'ộ' | 'ổ' | 'ố' | 'ồ' => 'o',
            'ş' | 'ś' => 's',
            'ù' | 'ú' | 'û' | 'ü' | 'ư' => 'u',
            'ý' => 'y',
            'ğ' => 'g',
            c if c.is_ascii_alphanumeric() => c,
            _ => continue,
        };
        out.push(folded);
    }
    out
}

/// Capitalises the first letter of each dot-separated part (`zoe.obrien` → `Zoe.Obrien`): how people type
/// emails into a CRM.
pub fn mixed_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = matches!(c, '.' | '@');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_and_case() {
        assert_eq!(ascii_fold("Zoë"), "zoe");
        assert_eq!(ascii_fold("O'Brien"), "obrien");
        assert_eq!(ascii_fold("Nguyễn"), "nguyen");
        assert_eq!(ascii_fold("Trần"), "tran");
        assert_eq!(ascii_fold("Ó Súilleabháin"), "osuilleabhain");
        assert_eq!(mixed_case("zoe.obrien@student.college.ac.uk"), "Zoe.Obrien@Student.College.Ac.Uk");
        for n in FIRST_NAMES.iter().chain(LAST_NAMES) {
            assert!(!ascii_fold(n).is_empty(), "{n} folds to nothing");
        }
    }
}
