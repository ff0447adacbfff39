//! Stem file names: `{track}_{stem}_{rate}{depth}.wav` (`spot_drums_48k24b.wav`), or a user
//! template with the same placeholders, always sanitised into one safe file name.

use super::encode::SampleFormat;
use crate::error::{Error, Result};

/// The delivery convention: `spot_drums_48k24b.wav`.
pub const DEFAULT_TEMPLATE: &str = "{track}_{stem}_{rate}{depth}";

/// `48k`, `44.1k`, `22.05k`, `11.025k`, `96k`, `88.2k`; rates that are not whole hertz per
/// thousand keep every digit needed.
pub fn rate_label(rate: u32) -> String {
    let whole = rate / 1000;
    let frac = rate % 1000;
    if frac == 0 {
        return format!("{whole}k");
    }
    let digits = format!("{frac:03}");
    format!("{whole}.{}k", digits.trim_end_matches('0'))
}

/// Renders `template` for one stem and sanitises it: path separators, control characters and
/// `:` become `_`, `..` is broken up, leading dots are dropped, `.wav` is appended if missing.
/// The result never contains a path separator, so no track name can escape the output folder.
pub fn render_name(
    template: &str,
    track: &str,
    stem: &str,
    rate: u32,
    format: SampleFormat,
) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        out.push_str(&rest[..open]);
        if rest[open..].starts_with('}') {
            return Err(Error::param(
                "--name-template",
                format!("unbalanced '}}' in {template:?}"),
            ));
        }
        let close = rest[open..].find('}').ok_or_else(|| {
            Error::param(
                "--name-template",
                format!("unbalanced '{{' in {template:?}"),
            )
        })?;
        let key = &rest[open + 1..open + close];
        match key {
            "track" => out.push_str(track),
            "stem" => out.push_str(stem),
            "rate" => out.push_str(&rate_label(rate)),
            "depth" => out.push_str(format.label()),
            other => {
                return Err(Error::param(
                    "--name-template",
                    format!("unknown placeholder {{{other}}}: expected {{track}}, {{stem}}, {{rate}} or {{depth}}"),
                ))
            }
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    let mut name = sanitise(&out);
    if !name.to_ascii_lowercase().ends_with(".wav") {
        name.push_str(".wav");
    }
    if name.len() <= 4 {
        return Err(Error::param(
            "--name-template",
            format!("{template:?} renders an empty file name"),
        ));
    }
    Ok(name)
}

fn sanitise(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c == ':' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    while s.contains("..") {
        s = s.replace("..", "._");
    }
    s.trim_start_matches(['.', ' ']).trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let got: Vec<String> = [48000, 44100, 96000, 22050, 11025, 8000, 192000, 88200]
            .map(rate_label)
            .to_vec();
        assert_eq!(
            got,
            ["48k", "44.1k", "96k", "22.05k", "11.025k", "8k", "192k", "88.2k"]
        );
    }

    #[test]
    fn default_and_custom_templates() {
        let n = render_name(
            DEFAULT_TEMPLATE,
            "spot",
            "drums",
            48000,
            SampleFormat::Int24,
        )
        .unwrap();
        assert_eq!(n, "spot_drums_48k24b.wav");
        let n = render_name(
            DEFAULT_TEMPLATE,
            "spot",
            "harmonic",
            44100,
            SampleFormat::Float32,
        )
        .unwrap();
        assert_eq!(n, "spot_harmonic_44.1k32f.wav");
        assert_eq!(
            render_name("{stem}-{track}.WAV", "a", "b", 48000, SampleFormat::Int16).unwrap(),
            "b-a.WAV"
        );
        assert!(render_name("{nope}", "a", "b", 48000, SampleFormat::Int16).is_err());
        assert!(render_name("{track", "a", "b", 48000, SampleFormat::Int16).is_err());
        assert!(render_name("track}", "a", "b", 48000, SampleFormat::Int16).is_err());
    }

    #[test]
    fn names_cannot_escape() {
        for track in [
            "../../etc/passwd",
            "a/b",
            "..",
            "\u{7}bell",
            "C:\\x",
            "...hidden",
        ] {
            let n =
                render_name(DEFAULT_TEMPLATE, track, "drums", 48000, SampleFormat::Int24).unwrap();
            assert!(
                !n.contains('/') && !n.contains('\\') && !n.contains("..") && !n.starts_with('.'),
                "{track:?} → {n:?}"
            );
            assert!(!n.chars().any(char::is_control), "{n:?}");
        }
        assert_eq!(
            render_name(
                DEFAULT_TEMPLATE,
                "Café née",
                "bass",
                48000,
                SampleFormat::Int24
            )
            .unwrap(),
            "Café née_bass_48k24b.wav"
        );
    }
}
