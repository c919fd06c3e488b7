//! The built-in presets: for each vendor export that icsync recognises, the export's real
//! header set, the few headers that identify it, and which column feeds which field.
//!
//! Pure data. A file's header row is matched against each preset's `signature` (headers
//! compared ignoring case, spaces and punctuation, so `E-mail 1 - Value` is `email1value`);
//! the first preset whose whole signature is present applies. Its `columns` then say, for
//! every header the vendor writes, where the value goes: a field of the API contract, one of
//! the name parts `first_name` / `middle_name` / `last_name` (joined into `full_name`), or
//! `ignore`. Every header of the real export is listed, `ignore` included, so the list
//! documents the whole set and a column nobody mapped is a decision, not an oversight.
//! Columns are in the export's own order, except that columns feeding one target stand in
//! priority order (the first non-empty one wins): mobile before main or business phone
//! before home or other, primary email first, home country before business country.
//!
//! Judgement calls, the same in every preset:
//! - An employer (Account Name, Company, Organization Name) is not a trading name: `ignore`.
//! - A job title is the closest thing an export has to an occupation: `risk.occupation`.
//! - A company's switchboard, an assistant's phone, faxes and pagers are not the person's
//!   phone: `ignore`. So is a country guessed from an IP address (HubSpot's `IP Country`).
//!
//! Where each header set comes from is noted above each preset; the fixtures in
//! `tests/fixtures/presets/` (three rows each) and `tests/fixtures/exports/` (5,000 rows,
//! with their expected bad rows) are written in these shapes by
//! `tests/fixtures/exports/generate.py`.

/// One vendor export format.
#[derive(Debug)]
pub struct Preset {
    /// Shown to the user: "Salesforce contacts".
    pub name: &'static str,
    /// Headers that together identify the format (compared ignoring case, spaces and
    /// punctuation); all must be present.
    pub signature: &'static [&'static str],
    /// Source header -> target, in priority order: when several columns feed one target, the
    /// first non-empty one wins. Targets are strings: "full_name", "email", "external_id",
    /// "phone", "trading_name", "type", "risk.occupation", "risk.source_of_funds",
    /// "risk.country_of_residence", "risk.expected_monthly_volume", "risk.is_pep",
    /// "first_name", "middle_name", "last_name", "ignore".
    pub columns: &'static [(&'static str, &'static str)],
}

pub const PRESETS: &[Preset] = &[
    // Salesforce report export (Lightning "Details Only", CSV) of a Contacts & Accounts
    // report. Column labels are Salesforce's field labels as reports show them: `Contact ID`
    // (field reference: Contact.Id), `Mobile` (MobilePhone; the UI and report label is
    // "Mobile", not "Mobile Phone"), `Phone`, `Mailing Zip/Postal Code`, `Mailing Country`.
    // Sources: developer.salesforce.com sfFieldRef "Contact" (labels Contact ID, Business
    // Phone/Phone, Home Phone, Mailing ...); public code expecting a Salesforce contact
    // report: "Salutation,First Name,Last Name,Title,Mailing Street,Mailing City,Mailing
    // State/Province,Mailing Zip/Postal Code,Mailing Country,Phone,Mobile,Fax,Email,Account
    // Owner,Account Name" and an AWS tutorial's Salesforce-style contacts sample with the
    // same Mailing ... labels. The column set and order of a report are the report author's
    // choice; this is a typical one.
    Preset {
        name: "Salesforce contacts",
        signature: &["Contact ID", "Last Name", "Account Name"],
        columns: &[
            ("Contact ID", "external_id"),
            ("Salutation", "ignore"),
            ("First Name", "first_name"),
            ("Middle Name", "middle_name"),
            ("Last Name", "last_name"),
            ("Suffix", "ignore"),
            ("Title", "risk.occupation"),
            ("Department", "ignore"),
            ("Account Name", "ignore"),
            ("Mailing Street", "ignore"),
            ("Mailing City", "ignore"),
            ("Mailing State/Province", "ignore"),
            ("Mailing Zip/Postal Code", "ignore"),
            ("Mailing Country", "risk.country_of_residence"),
            ("Other Country", "risk.country_of_residence"),
            ("Mobile", "phone"),
            ("Phone", "phone"),
            ("Home Phone", "phone"),
            ("Other Phone", "phone"),
            ("Fax", "ignore"),
            ("Asst. Phone", "ignore"),
            ("Email", "email"),
            ("Lead Source", "ignore"),
            ("Birthdate", "ignore"),
            ("Contact Owner", "ignore"),
            ("Created Date", "ignore"),
            ("Last Activity", "ignore"),
            ("Other Street", "ignore"),
            ("Other City", "ignore"),
            ("Other State/Province", "ignore"),
            ("Other Zip/Postal Code", "ignore"),
            ("Email Opt Out", "ignore"),
            ("Description", "ignore"),
        ],
    },
    // Salesforce report export of a Leads report. In reports the Lead's Company field is
    // labelled `Company / Account` (public lead-dedupe scripts and an upload handler that
    // expects "Lead Owner,First Name,Last Name,Title,Company / Account,Lead Source,Rating,
    // Street,Email"); the address is plain `Street`, `City`, `State/Province`,
    // `Zip/Postal Code`, `Country`; `Lead ID` is the Id's label (sfFieldRef "Lead").
    Preset {
        name: "Salesforce leads",
        signature: &["Lead ID", "Last Name", "Company / Account"],
        columns: &[
            ("Lead ID", "external_id"),
            ("Salutation", "ignore"),
            ("First Name", "first_name"),
            ("Middle Name", "middle_name"),
            ("Last Name", "last_name"),
            ("Suffix", "ignore"),
            ("Title", "risk.occupation"),
            ("Company / Account", "ignore"),
            ("Street", "ignore"),
            ("City", "ignore"),
            ("State/Province", "ignore"),
            ("Zip/Postal Code", "ignore"),
            ("Country", "risk.country_of_residence"),
            ("Mobile", "phone"),
            ("Phone", "phone"),
            ("Fax", "ignore"),
            ("Email", "email"),
            ("Website", "ignore"),
            ("Lead Source", "ignore"),
            ("Lead Status", "ignore"),
            ("Rating", "ignore"),
            ("Industry", "ignore"),
            ("No. of Employees", "ignore"),
            ("Annual Revenue", "ignore"),
            ("Lead Owner", "ignore"),
            ("Created Date", "ignore"),
            ("Last Activity", "ignore"),
            ("Email Opt Out", "ignore"),
            ("Description", "ignore"),
        ],
    },
    // HubSpot contacts export (CSV, every field quoted). `Record ID`, `First Name`,
    // `Last Name` come first, then the view's columns; the default view is Email, Phone
    // Number, Contact owner, Primary Associated Company ID, Last Activity Date, Lead Status,
    // Marketing contact status, Create Date, Associated Company. Property labels as in a
    // public "hubspot-crm-exports-all-contacts" file: Country/Region, Job Title, Mobile
    // Phone Number, State/Region, Street Address, Lifecycle Stage, WhatsApp Phone Number,
    // Work email, IP Country. "Export all properties" writes ~200 columns (alphabetical
    // after the first three); only those that matter or are in the default view are here.
    // Older portals wrote `Contact ID` instead of `Record ID`.
    Preset {
        name: "HubSpot contacts",
        signature: &["Record ID", "Email", "Phone Number"],
        columns: &[
            ("Record ID", "external_id"),
            ("First Name", "first_name"),
            ("Last Name", "last_name"),
            ("Email", "email"),
            ("Work email", "email"),
            ("Mobile Phone Number", "phone"),
            ("Phone Number", "phone"),
            ("WhatsApp Phone Number", "phone"),
            ("Job Title", "risk.occupation"),
            ("Company Name", "ignore"),
            ("Street Address", "ignore"),
            ("City", "ignore"),
            ("State/Region", "ignore"),
            ("Postal Code", "ignore"),
            ("Country/Region", "risk.country_of_residence"),
            ("Contact owner", "ignore"),
            ("Primary Associated Company ID", "ignore"),
            ("Lifecycle Stage", "ignore"),
            ("Lead Status", "ignore"),
            ("Marketing contact status", "ignore"),
            ("Create Date", "ignore"),
            ("Last Activity Date", "ignore"),
            ("Associated Company", "ignore"),
            ("Salutation", "ignore"),
            ("Date of birth", "ignore"),
            ("Fax Number", "ignore"),
            ("Industry", "ignore"),
            ("Job function", "ignore"),
            ("IP Country", "ignore"),
            ("IP Country Code", "ignore"),
            ("Original Source", "ignore"),
        ],
    },
    // Google Contacts, "Google CSV" (the format since the 2020s redesign): fixed columns
    // First Name .. Labels, then numbered groups only as many as the exported contacts need
    // ("E-mail 1 - Label", "E-mail 1 - Value", "E-mail 2 - ...", "Phone 1 - ...",
    // "Address 1 - Label/Formatted/Street/City/PO Box/Region/Postal Code/Country/Extended
    // Address", "Website 1 - ..."). Several values of one kind share a cell joined by
    // " ::: " (the first is the primary). Header seen identically in several independent
    // public importers and test suites.
    Preset {
        name: "Google Contacts",
        signature: &["E-mail 1 - Label", "E-mail 1 - Value"],
        columns: &[
            ("First Name", "first_name"),
            ("Middle Name", "middle_name"),
            ("Last Name", "last_name"),
            ("Phonetic First Name", "ignore"),
            ("Phonetic Middle Name", "ignore"),
            ("Phonetic Last Name", "ignore"),
            ("Name Prefix", "ignore"),
            ("Name Suffix", "ignore"),
            ("Nickname", "ignore"),
            ("File As", "ignore"),
            ("Organization Name", "ignore"),
            ("Organization Title", "risk.occupation"),
            ("Organization Department", "ignore"),
            ("Birthday", "ignore"),
            ("Notes", "ignore"),
            ("Photo", "ignore"),
            ("Labels", "ignore"),
            ("E-mail 1 - Label", "ignore"),
            ("E-mail 1 - Value", "email"),
            ("E-mail 2 - Label", "ignore"),
            ("E-mail 2 - Value", "email"),
            ("E-mail 3 - Label", "ignore"),
            ("E-mail 3 - Value", "email"),
            ("Phone 1 - Label", "ignore"),
            ("Phone 1 - Value", "phone"),
            ("Phone 2 - Label", "ignore"),
            ("Phone 2 - Value", "phone"),
            ("Phone 3 - Label", "ignore"),
            ("Phone 3 - Value", "phone"),
            ("Address 1 - Label", "ignore"),
            ("Address 1 - Formatted", "ignore"),
            ("Address 1 - Street", "ignore"),
            ("Address 1 - City", "ignore"),
            ("Address 1 - PO Box", "ignore"),
            ("Address 1 - Region", "ignore"),
            ("Address 1 - Postal Code", "ignore"),
            ("Address 1 - Country", "risk.country_of_residence"),
            ("Address 1 - Extended Address", "ignore"),
            ("Address 2 - Country", "risk.country_of_residence"),
            ("Website 1 - Label", "ignore"),
            ("Website 1 - Value", "ignore"),
        ],
    },
    // Google Contacts, the older "Google CSV" (Gmail contacts manager era): Name, Given Name,
    // Additional Name, Family Name, ... Occupation, ... Group Membership, then "E-mail 1 -
    // Type"/"- Value", "Phone 1 - Type"/"- Value", "Address 1 - Type/Formatted/...",
    // "Organization 1 - Type/Name/Yomi Name/Title/Department/Symbol/Location/Job
    // Description", "Website 1 - Type"/"- Value". Header seen identically in many public
    // converters and generators. Multi-values also joined by " ::: ".
    Preset {
        name: "Google Contacts (older format)",
        signature: &["E-mail 1 - Type", "E-mail 1 - Value"],
        columns: &[
            ("Name", "full_name"),
            ("Given Name", "first_name"),
            ("Additional Name", "middle_name"),
            ("Family Name", "last_name"),
            ("Yomi Name", "ignore"),
            ("Given Name Yomi", "ignore"),
            ("Additional Name Yomi", "ignore"),
            ("Family Name Yomi", "ignore"),
            ("Name Prefix", "ignore"),
            ("Name Suffix", "ignore"),
            ("Initials", "ignore"),
            ("Nickname", "ignore"),
            ("Short Name", "ignore"),
            ("Maiden Name", "ignore"),
            ("Birthday", "ignore"),
            ("Gender", "ignore"),
            ("Location", "ignore"),
            ("Billing Information", "ignore"),
            ("Directory Server", "ignore"),
            ("Mileage", "ignore"),
            ("Occupation", "risk.occupation"),
            ("Organization 1 - Title", "risk.occupation"),
            ("Hobby", "ignore"),
            ("Sensitivity", "ignore"),
            ("Priority", "ignore"),
            ("Subject", "ignore"),
            ("Notes", "ignore"),
            ("Group Membership", "ignore"),
            ("E-mail 1 - Type", "ignore"),
            ("E-mail 1 - Value", "email"),
            ("E-mail 2 - Type", "ignore"),
            ("E-mail 2 - Value", "email"),
            ("Phone 1 - Type", "ignore"),
            ("Phone 1 - Value", "phone"),
            ("Phone 2 - Type", "ignore"),
            ("Phone 2 - Value", "phone"),
            ("Address 1 - Type", "ignore"),
            ("Address 1 - Formatted", "ignore"),
            ("Address 1 - Street", "ignore"),
            ("Address 1 - City", "ignore"),
            ("Address 1 - PO Box", "ignore"),
            ("Address 1 - Region", "ignore"),
            ("Address 1 - Postal Code", "ignore"),
            ("Address 1 - Country", "risk.country_of_residence"),
            ("Address 1 - Extended Address", "ignore"),
            ("Organization 1 - Type", "ignore"),
            ("Organization 1 - Name", "ignore"),
            ("Organization 1 - Yomi Name", "ignore"),
            ("Organization 1 - Department", "ignore"),
            ("Organization 1 - Symbol", "ignore"),
            ("Organization 1 - Location", "ignore"),
            ("Organization 1 - Job Description", "ignore"),
            ("Website 1 - Type", "ignore"),
            ("Website 1 - Value", "ignore"),
        ],
    },
    // Outlook (desktop) "Export to a file" > "Comma Separated Values", the same columns as
    // Microsoft's support article "Create or edit .csv files to import into Outlook" (cited
    // as the source by public code reproducing the list, "EXACT Microsoft order"); Google
    // Contacts' "Outlook CSV" export uses this header too. `Title` is the honorific (Mr.,
    // Dr.), `Job Title` the job. Every field is quoted in Outlook's own files.
    Preset {
        name: "Outlook contacts",
        signature: &["E-mail Address", "Business Phone", "Mobile Phone"],
        columns: &[
            ("Title", "ignore"),
            ("First Name", "first_name"),
            ("Middle Name", "middle_name"),
            ("Last Name", "last_name"),
            ("Suffix", "ignore"),
            ("Company", "ignore"),
            ("Department", "ignore"),
            ("Job Title", "risk.occupation"),
            ("Business Street", "ignore"),
            ("Business Street 2", "ignore"),
            ("Business Street 3", "ignore"),
            ("Business City", "ignore"),
            ("Business State", "ignore"),
            ("Business Postal Code", "ignore"),
            ("Home Country/Region", "risk.country_of_residence"),
            ("Business Country/Region", "risk.country_of_residence"),
            ("Other Country/Region", "risk.country_of_residence"),
            ("Home Street", "ignore"),
            ("Home Street 2", "ignore"),
            ("Home Street 3", "ignore"),
            ("Home City", "ignore"),
            ("Home State", "ignore"),
            ("Home Postal Code", "ignore"),
            ("Other Street", "ignore"),
            ("Other Street 2", "ignore"),
            ("Other Street 3", "ignore"),
            ("Other City", "ignore"),
            ("Other State", "ignore"),
            ("Other Postal Code", "ignore"),
            ("Assistant's Phone", "ignore"),
            ("Business Fax", "ignore"),
            ("Mobile Phone", "phone"),
            ("Primary Phone", "phone"),
            ("Business Phone", "phone"),
            ("Business Phone 2", "phone"),
            ("Home Phone", "phone"),
            ("Home Phone 2", "phone"),
            ("Other Phone", "phone"),
            ("Car Phone", "phone"),
            ("Callback", "ignore"),
            ("Company Main Phone", "ignore"),
            ("Home Fax", "ignore"),
            ("ISDN", "ignore"),
            ("Other Fax", "ignore"),
            ("Pager", "ignore"),
            ("Radio Phone", "ignore"),
            ("TTY/TDD Phone", "ignore"),
            ("Telex", "ignore"),
            ("Account", "ignore"),
            ("Anniversary", "ignore"),
            ("Assistant's Name", "ignore"),
            ("Billing Information", "ignore"),
            ("Birthday", "ignore"),
            ("Business Address PO Box", "ignore"),
            ("Categories", "ignore"),
            ("Children", "ignore"),
            ("Directory Server", "ignore"),
            ("E-mail Address", "email"),
            ("E-mail Type", "ignore"),
            ("E-mail Display Name", "ignore"),
            ("E-mail 2 Address", "email"),
            ("E-mail 2 Type", "ignore"),
            ("E-mail 2 Display Name", "ignore"),
            ("E-mail 3 Address", "email"),
            ("E-mail 3 Type", "ignore"),
            ("E-mail 3 Display Name", "ignore"),
            ("Gender", "ignore"),
            ("Government ID Number", "ignore"),
            ("Hobby", "ignore"),
            ("Home Address PO Box", "ignore"),
            ("Initials", "ignore"),
            ("Internet Free Busy", "ignore"),
            ("Keywords", "ignore"),
            ("Language", "ignore"),
            ("Location", "ignore"),
            ("Manager's Name", "ignore"),
            ("Mileage", "ignore"),
            ("Notes", "ignore"),
            ("Office Location", "ignore"),
            ("Organizational ID Number", "ignore"),
            ("Other Address PO Box", "ignore"),
            ("Priority", "ignore"),
            ("Private", "ignore"),
            ("Profession", "risk.occupation"),
            ("Referred By", "ignore"),
            ("Sensitivity", "ignore"),
            ("Spouse", "ignore"),
            ("User 1", "ignore"),
            ("User 2", "ignore"),
            ("User 3", "ignore"),
            ("User 4", "ignore"),
            ("Web Page", "ignore"),
        ],
    },
    // Stripe customers: the Customer object as `GET /v1/customers` lists it in `data`
    // (docs.stripe.com/api/customers/object, API version 2025-04-30.basil), nested members
    // as dotted paths. `address.country` is already ISO alpha-2. `shipping.name` is whoever
    // receives parcels, not necessarily the customer: ignored.
    Preset {
        name: "Stripe customers",
        signature: &["id", "object", "livemode", "invoice_prefix"],
        columns: &[
            ("id", "external_id"),
            ("object", "ignore"),
            ("address.city", "ignore"),
            ("address.country", "risk.country_of_residence"),
            ("address.line1", "ignore"),
            ("address.line2", "ignore"),
            ("address.postal_code", "ignore"),
            ("address.state", "ignore"),
            ("balance", "ignore"),
            ("created", "ignore"),
            ("currency", "ignore"),
            ("default_source", "ignore"),
            ("delinquent", "ignore"),
            ("description", "ignore"),
            ("email", "email"),
            ("invoice_prefix", "ignore"),
            ("invoice_settings.custom_fields", "ignore"),
            ("invoice_settings.default_payment_method", "ignore"),
            ("invoice_settings.footer", "ignore"),
            ("invoice_settings.rendering_options", "ignore"),
            ("livemode", "ignore"),
            ("metadata", "ignore"),
            ("name", "full_name"),
            ("next_invoice_sequence", "ignore"),
            ("phone", "phone"),
            ("preferred_locales", "ignore"),
            ("shipping.address.city", "ignore"),
            ("shipping.address.country", "risk.country_of_residence"),
            ("shipping.address.line1", "ignore"),
            ("shipping.address.line2", "ignore"),
            ("shipping.address.postal_code", "ignore"),
            ("shipping.address.state", "ignore"),
            ("shipping.name", "ignore"),
            ("shipping.phone", "phone"),
            ("tax_exempt", "ignore"),
            ("test_clock", "ignore"),
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    const TARGETS: &[&str] = &[
        "full_name",
        "email",
        "external_id",
        "phone",
        "trading_name",
        "type",
        "risk.occupation",
        "risk.source_of_funds",
        "risk.country_of_residence",
        "risk.expected_monthly_volume",
        "risk.is_pep",
        "first_name",
        "middle_name",
        "last_name",
        "ignore",
    ];

    /// A header as signatures compare it: letters and digits only, lower case.
    fn key(header: &str) -> String {
        header
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    }

    fn matches(preset: &Preset, headers: &[&str]) -> bool {
        let have: Vec<String> = headers.iter().map(|h| key(h)).collect();
        preset.signature.iter().all(|s| have.contains(&key(s)))
    }

    fn headers(preset: &Preset) -> Vec<&'static str> {
        preset.columns.iter().map(|(h, _)| *h).collect()
    }

    #[test]
    fn no_two_presets_match_one_header_set() {
        for (i, a) in PRESETS.iter().enumerate() {
            for b in &PRESETS[i + 1..] {
                for set in [headers(a), headers(b)] {
                    assert!(
                        !(matches(a, &set) && matches(b, &set)),
                        "{} and {} both match {set:?}",
                        a.name,
                        b.name
                    );
                }
            }
        }
    }

    #[test]
    fn each_preset_matches_its_own_headers() {
        for p in PRESETS {
            assert!(matches(p, &headers(p)), "{}", p.name);
        }
    }

    #[test]
    fn signature_headers_are_columns() {
        for p in PRESETS {
            assert!((2..=4).contains(&p.signature.len()), "{}", p.name);
            for s in p.signature {
                assert!(
                    p.columns.iter().any(|(h, _)| h == s),
                    "{}: signature header {s:?} is not among its columns",
                    p.name
                );
            }
        }
    }

    #[test]
    fn targets_are_known() {
        for p in PRESETS {
            for (h, t) in p.columns {
                assert!(
                    TARGETS.contains(t),
                    "{}: {h:?} -> unknown target {t:?}",
                    p.name
                );
            }
        }
    }

    #[test]
    fn headers_are_unique_within_a_preset() {
        for p in PRESETS {
            let mut seen = std::collections::HashSet::new();
            for (h, _) in p.columns {
                assert!(seen.insert(key(h)), "{}: {h:?} listed twice", p.name);
            }
        }
    }

    /// The header rows of `tests/fixtures/presets/*.csv` (written by the fixture generator
    /// in each vendor's shape): each is recognised as its own preset only, and every header
    /// in it is one the preset lists.
    #[test]
    fn fixture_headers_are_recognised() {
        let fixtures = [
            (
                "Salesforce contacts",
                include_str!("../../tests/fixtures/presets/salesforce-contacts.csv"),
            ),
            (
                "Salesforce leads",
                include_str!("../../tests/fixtures/presets/salesforce-leads.csv"),
            ),
            (
                "HubSpot contacts",
                include_str!("../../tests/fixtures/presets/hubspot-contacts.csv"),
            ),
            (
                "Google Contacts",
                include_str!("../../tests/fixtures/presets/google-contacts.csv"),
            ),
            (
                "Google Contacts (older format)",
                include_str!("../../tests/fixtures/presets/google-contacts-legacy.csv"),
            ),
            (
                "Outlook contacts",
                include_str!("../../tests/fixtures/presets/outlook-contacts.csv"),
            ),
        ];
        for (name, text) in fixtures {
            let header: Vec<&str> = text
                .lines()
                .next()
                .unwrap()
                .split(',')
                .map(|h| h.trim_matches('"'))
                .collect();
            let matched: Vec<&str> = PRESETS
                .iter()
                .filter(|p| matches(p, &header))
                .map(|p| p.name)
                .collect();
            assert_eq!(matched, [name], "{header:?}");
            let preset = PRESETS.iter().find(|p| p.name == name).unwrap();
            let known: Vec<String> = preset.columns.iter().map(|(h, _)| key(h)).collect();
            for h in &header {
                assert!(known.contains(&key(h)), "{name}: {h:?} not listed");
            }
        }
    }

    #[test]
    fn names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for p in PRESETS {
            assert!(seen.insert(p.name), "{} twice", p.name);
        }
    }
}
