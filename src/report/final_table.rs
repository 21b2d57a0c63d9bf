//! The final run's table: the model the law placed, its prediction and interval beside what
//! it measured, its cost against the cost laws' forecast, the baseline, and what `final:`'s
//! limits did to the optimum.

use super::Input;
use super::format::{human, interval, mib, pct, sci, seconds, sig};
use super::tables::{interval_human, opt, table};
use super::template::escape_markdown;

/// What `final:`'s limits did to the optimum: the inference share and the binding caps.
fn limits_words(l: &crate::fit::constrained::LimitedOptimum) -> String {
    let mut out = format!(
        "Under `final:`'s limits the budget of {} FLOPs buys training and the model's lifetime \
         of inference: {} FLOPs of training and {} of inference (2N per token). The law's best \
         model under them is N = {} on D = {} tokens, predicted loss {}; spent on training \
         alone, the same budget's optimum is N = {} on D = {} (loss {}).",
        sci(l.training_flops + l.inference_flops),
        sci(l.training_flops),
        sci(l.inference_flops),
        human(l.n),
        human(l.d),
        sig(l.loss, 4),
        human(l.free_n),
        human(l.free_d),
        sig(l.free_loss, 4),
    );
    for b in &l.binding {
        out.push_str(match b.as_str() {
            "max_params" => " The parameter cap (`max_params`) holds N at its edge.",
            "max_memory" => {
                " The memory limit (`max_memory_bytes`, through the fitted memory law) holds N \
                 at its edge."
            }
            "max_wall_seconds" => {
                " The wall-time limit (`max_wall_seconds`, through the fitted time law) holds N \
                 at its edge."
            }
            _ => "",
        });
    }
    if let Some(m) = l.memory_bytes {
        out.push_str(&format!(" Predicted peak memory: {} bytes.", human(m)));
    }
    if let Some(t) = l.wall_seconds {
        out.push_str(&format!(
            " Predicted training time on this machine: {}.",
            seconds(t)
        ));
    }
    out.push_str("\n\n");
    out
}

pub fn final_run(input: &Input) -> String {
    let Some(f) = &input.final_run else {
        return "*No final run: add `final: {budget: C}` to the study.*\n".into();
    };
    let mut out = f.chosen_by.as_ref().map_or(String::new(), |why| {
        format!(
            "`final.law: auto` placed the final run with the `{}` law: {why}.\n\n",
            f.law
        )
    });
    out.push_str(&f.limits.as_ref().map_or(String::new(), limits_words));
    out.push_str(&format!(
        "For {}C = {} FLOPs the fitted law's optimum is N_opt = {} {}, D_opt = {} {}. The nearest \
         buildable model is `{}` ({} layers, d_model {}, {} heads: N = {}), trained on {} tokens \
         ({} FLOPs counted exactly). The baseline is the study's smallest model on the same tokens.\n\n",
        if f.limits.is_some() {
            "its training share, "
        } else {
            ""
        },
        sci(f.budget),
        human(f.n_opt),
        interval_human(f.n_opt_ci),
        human(f.d_opt),
        interval_human(f.d_opt_ci),
        escape_markdown(&f.run.name),
        f.run.layers,
        f.run.d_model,
        f.run.heads,
        human(f.run.params),
        human(f.run.tokens as f64),
        sci(f.run.flops),
    ));
    if f.lr_from_law {
        out.push_str(&format!(
            "Both train at the learning rate the fitted η*(N, D) gives their shape and tokens: \
             {} for `{}`, {} for the baseline.\n\n",
            sig(f.run.lr, 3),
            escape_markdown(&f.run.name),
            sig(f.baseline.lr, 3)
        ));
    }
    let row = |label: &str, m: &super::context::FinalModel| {
        vec![
            label.to_string(),
            format!("`{}`", escape_markdown(&m.name)),
            human(m.params),
            human(m.tokens as f64),
            sig(m.predicted, 5),
            interval(m.law_ci, 4),
            interval(m.predicted_ci, 4),
            match m.measured {
                Some(v) if m.status == "ok" => sig(v, 5),
                _ => m.status.clone(),
            },
            opt(m.wall_forecast, seconds),
            opt(m.wall_seconds, seconds),
            opt(m.rss_forecast, mib),
            opt(m.peak_rss_bytes.map(|b| b as f64), mib),
        ]
    };
    out.push_str(&super::batch::final_words(f));
    let mut rows = vec![row("final", &f.run), row("baseline", &f.baseline)];
    rows.extend(
        f.neighbour
            .as_ref()
            .map(|n| row(&format!("batch {}", n.batch), n)),
    );
    out.push_str(&table(
        &[
            "model",
            "run",
            " N",
            " D",
            " predicted loss",
            " the law's interval",
            " interval for one run",
            " measured loss",
            " wall forecast",
            " wall measured",
            " RSS forecast",
            " RSS measured",
        ],
        rows,
    ));
    match (f.run.measured, f.rel_error) {
        (Some(m), Some(e)) if f.run.status == "ok" => {
            let confidence = input
                .fits
                .chinchilla
                .as_ref()
                .map_or(95.0, |c| c.confidence * 100.0);
            let against = match f.within_ci {
                Some(true) => format!("inside the {confidence:.0} % interval for one run"),
                Some(false) => format!("outside the {confidence:.0} % interval for one run"),
                None => "with no interval to hold it to (no bootstrap, or no more fitted runs \
                         than the law has parameters)"
                    .into(),
            };
            out.push_str(&format!(
                "\n**Predicted {} vs measured {}**: relative error {}, {against}. ",
                sig(f.run.predicted, 5),
                sig(m, 5),
                pct(e),
            ));
            if let (Some(g), Some(r)) = (f.gain, f.gain_rel) {
                out.push_str(&format!(
                    "Gain over the baseline: {} nats/token ({}).\n",
                    sig(g, 3),
                    pct(r)
                ));
            } else {
                out.push('\n');
            }
        }
        _ => out.push_str(&format!(
            "\nThe final run is {}: `scalebook run` trains it.\n",
            f.run.status
        )),
    }
    if f.run.predicted_ci.is_some() {
        out.push_str(
            "\nThe law's interval is where its expected loss lies (percentiles over the \
             bootstrap's refits); the interval for one run widens it by how far single runs \
             land off the law — every refit's prediction times every fitted run's relative \
             residual, centred and scaled for the parameters fitted — since a training run is \
             one draw, not the expectation.\n",
        );
    }
    out.push_str(&super::metric::final_words(input));
    out.push_str(&super::accuracy::final_words(input));
    out
}
