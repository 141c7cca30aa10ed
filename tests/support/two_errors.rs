//! Configurations with two errors found in two different phases of a load:
//! reading the model, compiling the rules, reading a list, and the lint that
//! follows the rules. A load must report both, wherever it runs (`check`,
//! `serve`'s refusal, a failed reload), so a user fixes both in one go.

/// One problem a case must report. `line` counts in the file named: for the
/// configuration, in [`TwoErrors::sections`] (a caller that puts lines in
/// front adds them); for a list, in its CSV.
pub struct Expected {
    pub code: &'static str,
    /// `true`: the configuration file; `false`: the case's list file.
    pub in_config: bool,
    pub line: u32,
    pub column: Option<u32>,
    pub rule: &'static str,
}

pub struct TwoErrors {
    pub name: &'static str,
    /// The configuration without `[server]`.
    pub sections: &'static str,
    /// The list `legacy.csv` beside it, if the case has one.
    pub csv: Option<&'static str>,
    pub expect: [Expected; 2],
}

/// The list file a case names.
pub const CSV_NAME: &str = "legacy.csv";

const fn e(
    code: &'static str,
    in_config: bool,
    line: u32,
    column: Option<u32>,
    rule: &'static str,
) -> Expected {
    Expected {
        code,
        in_config,
        line,
        column,
        rule,
    }
}

/// `/a → /b → /a`, at lines `at` and `at + 5` of the sections.
macro_rules! two_loop_rules {
    () => {
        "[[redirect]]\nid = \"a\"\npath = \"/a\"\nto = \"/b\"\n\n[[redirect]]\nid = \"b\"\npath = \"/b\"\nto = \"/a\"\n"
    };
}

pub const CASES: [TwoErrors; 6] = [
    TwoErrors {
        name: "model + compile",
        sections: "[[redirect]]\nid = \"bad-re\"\nregex = '^/(unclosed$'\nto = \"https://n.example/x\"\n\n\
                   [[redirect]]\nid = \"no-pool\"\nprefix = \"/p\"\npool = \"nope\"\n",
        csv: None,
        expect: [
            e("unknown_pool", true, 9, Some(8), "no-pool"),
            e("bad_regex", true, 1, Some(1), "bad-re"),
        ],
    },
    TwoErrors {
        name: "model + list",
        sections: "[[redirect]]\nid = \"typo\"\nhost = \"old.example\"\npath = \"/t\"\nto = \"https://n.example/t\"\nstatuss = 301\n\n\
                   [[list]]\nid = \"legacy\"\nfile = \"legacy.csv\"\n",
        csv: Some("old.example/a,https://n.example/a\nold.example/b,https://n.example/b,399\n"),
        expect: [
            e("unknown_key", true, 6, Some(1), "typo"),
            e("bad_list_row", false, 2, None, "legacy"),
        ],
    },
    TwoErrors {
        name: "model + lint",
        sections: concat!(
            "[[redirect]]\nid = \"s\"\npath = \"/s\"\nto = \"/t\"\nstatus = 299\n\n",
            two_loop_rules!()
        ),
        csv: None,
        expect: [
            e("bad_value", true, 5, Some(10), "s"),
            e("loop", true, 7, Some(1), "a"),
        ],
    },
    TwoErrors {
        name: "compile + list",
        sections: "[[redirect]]\nid = \"js\"\npath = \"/js\"\nto = \"javascript:alert(1)\"\n\n\
                   [[list]]\nid = \"legacy\"\nfile = \"legacy.csv\"\n",
        csv: Some("old.example/a,https://n.example/a\nold.example/b,javascript:alert(1)\n"),
        expect: [
            e("bad_target", true, 1, Some(1), "js"),
            e("bad_list_row", false, 2, None, "legacy"),
        ],
    },
    TwoErrors {
        name: "compile + lint",
        sections: concat!(
            "[[redirect]]\nid = \"d1\"\npath = \"/d\"\nto = \"/x\"\n\n",
            "[[redirect]]\nid = \"d2\"\npath = \"/d\"\nto = \"/y\"\n\n",
            two_loop_rules!()
        ),
        csv: None,
        expect: [
            e("duplicate_rule", true, 6, Some(1), "d2"),
            e("loop", true, 11, Some(1), "a"),
        ],
    },
    TwoErrors {
        name: "list + lint",
        sections: concat!(
            "[[list]]\nid = \"legacy\"\nfile = \"legacy.csv\"\n\n",
            two_loop_rules!()
        ),
        csv: Some("old.example/a,https://n.example/a\nold.example/b,https://n.example/b,399\n"),
        expect: [
            e("bad_list_row", false, 2, None, "legacy"),
            e("loop", true, 5, Some(1), "a"),
        ],
    },
];

impl Expected {
    /// The place as problems print it: `file:line[:column]`, with `offset`
    /// lines in front of the sections of the configuration.
    pub fn place(&self, config: &str, list: &str, offset: u32) -> String {
        let (file, line) = if self.in_config {
            (config, self.line + offset)
        } else {
            (list, self.line)
        };
        match self.column {
            Some(c) => format!("{file}:{line}:{c}"),
            None => format!("{file}:{line}"),
        }
    }

    /// The line a problem prints starts with this (see `Problem`'s Display).
    pub fn prefix(&self, config: &str, list: &str, offset: u32) -> String {
        format!(
            "{}: error[{}] rule \"{}\"",
            self.place(config, list, offset),
            self.code,
            self.rule
        )
    }
}
