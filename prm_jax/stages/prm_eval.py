"""Stage `prm_eval`: PRM line scores on held-out tasks' responses against trivial baselines;
draws workdir/prm_lines.png and prm_lines.html."""

from __future__ import annotations

from absl import logging

from prm_jax.models import load_pretrained
from prm_jax.prm import metrics as metrics_lib
from prm_jax.prm.score import render_html, render_png, score_lines
from prm_jax.stages.context import StageContext
from prm_jax.stages import common
from prm_jax.stages.prm_train import selected_rows


def run(ctx: StageContext) -> dict:
    config = ctx.config
    wd = ctx.workdir
    tok = ctx.tokenizer
    train_rows, test_rows = selected_rows(config, wd)
    test_rows = [r for r in test_rows if r["lines"]]
    prm = load_pretrained(wd.prm)
    scores = score_lines(prm, tok, [r["prompt"] for r in test_rows], [r["response"] for r in test_rows])
    labels = [[l["label"] for l in r["lines"]] for r in test_rows]
    train_labels = [[l["label"] for l in r["lines"]] for r in train_rows]
    result = {"heldout_responses": len(test_rows),
              "prm": metrics_lib.line_metrics(scores, labels),
              "baselines": metrics_lib.baseline_metrics(labels, train_labels)}
    # The informative subset: failing responses the policy could have revised (the empty prefix
    # is solvable), where the first error is not simply "the first line".
    revised = [i for i, r in enumerate(test_rows) if not r["passed"] and r["empty_prefix_solvable"]]
    if revised:
        sub_labels = [labels[i] for i in revised]
        result["revised"] = {"responses": len(revised),
                             "prm": metrics_lib.line_metrics([scores[i] for i in revised], sub_labels),
                             "baselines": metrics_lib.baseline_metrics(sub_labels, train_labels)}
    failing = [i for i, r in enumerate(test_rows) if not r["passed"] and 0 < (r["first_error_line"] or 0)]
    if failing:
        i = failing[0]
        title = (f"{test_rows[i]['task_id']}: first error at line {test_rows[i]['first_error_line'] + 1} "
                 f"(binary search)")
        render_png(test_rows[i]["response"], scores[i], wd.path("prm_lines.png"), title)
        with open(wd.path("prm_lines.html"), "w") as f:
            f.write(render_html(test_rows[i]["response"], scores[i], title))
    for name, part in (("all", result), ("revised", result.get("revised"))):
        if part is None:
            continue
        p, b = part["prm"], part["baselines"]
        print(f"PRM held-out ({name}): AUROC {p['auroc']:.3f} (position baseline "
              f"{b['position']['auroc']:.3f}), first-error accuracy {p['first_error_accuracy']:.3f} "
              f"(position {b['position']['first_error_accuracy']:.3f}, majority "
              f"{b['majority']['first_error_accuracy']:.3f})")
    logging.info("prm_eval done")
    return result
