"""Rerun the paper-claim experiments and regenerate docs/results.md from their outputs.

    python experiments/run_all.py                      # every experiment at its CPU scale (~1.5 h on 2 cores)
    python experiments/run_all.py --only thinking      # some of them; the summary is rebuilt from all results
    python experiments/run_all.py --summarize_only     # rebuild the summary from results/ without training
    python experiments/run_all.py --smoke              # seconds each: checks that the scripts still run

Raw numbers (CSV/JSON) and plots go to --out_dir/<experiment>/ (results/ by default, not versioned); the
markdown summary to --results_md, with the plots copied beside it (<results_md dir>/figures/).
"""
import argparse
import json
import math
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import cost_ratio, denoising, dyck, learning_curves, thinking, thinking_sweep, video  # noqa: E402
from utils.usage import Parser, check, output_path_problem, run_entry_point  # noqa: E402

EXPERIMENTS = {"cost_ratio": cost_ratio, "learning_curves": learning_curves, "thinking": thinking, "dyck": dyck,
               "denoising": denoising, "video": video, "thinking_sweep": thinking_sweep}
NOT_YET = [
    "Scaling in batch size, depth, parameters and FLOPs (the paper's other scaling axes): one model size here",
    "BIG-bench's own Dyck rows and the paper's pretrained models (the Dyck ablation here trains on generated rows)",
    "Video at the paper's scale (Something-Something v2 through the SD-VAE; no real video data offline)",
]


def load(out_dir, name, file):
    path = os.path.join(out_dir, name, file)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def ppl(loss):
    return math.exp(loss)


def cost_ratio_section(out_dir, figure, command):
    data = load(out_dir, "cost_ratio", "cost_ratio.json")
    rows = data["rows"]
    lines = ["## Cost of a training step: EBT (2 thinking steps) against Transformer++", "",
             f"Paper: about {cost_ratio.PAPER_RATIO}x (an estimate). Ours, measured (median step time, interleaved, "
             "one process) and by `estimate_flops`:", "",
             "| size | vocab | context | batch | EBT ms/step | T++ ms/step | measured ratio | FLOP-estimate ratio |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['size']} | {r['vocab']} | {r['context']} | {r['batch']} | {r['ebt_ms']} | {r['transformer_ms']} "
              f"| {r['time_ratio']}x | {r['flops_ratio']}x |" for r in rows]
    low, high = min(r["time_ratio"] for r in rows), max(r["time_ratio"] for r in rows)
    verdict = ("agrees" if low <= cost_ratio.PAPER_RATIO * 1.25 and high >= cost_ratio.PAPER_RATIO * 0.75
               else "differs")
    lines += ["", f"Verdict: measured ratios span {low}x-{high}x; the small-scale cost {verdict} with the paper's "
              f"{cost_ratio.PAPER_RATIO}x within 25% (CPU timings; GPU kernels change the balance).", "",
              f"![cost ratio]({figure['cost_ratio.png']})", "", f"Command: `{command}`.", ""]
    return lines


def learning_section(out_dir, figure, command):
    curves = load(out_dir, "learning_curves", "learning_curves.json")
    scaling_data = load(out_dir, "learning_curves", "data_scaling.json")
    finals, scaling = scaling_data["finals"], scaling_data["scaling"]
    seeds = sorted({r["seed"] for r in finals})
    lines = ["## Learning: EBT (System 1) against Transformer++, same size and data", "",
             f"Paper: the EBT's loss falls faster with data: its scaling rate in data is "
             f"{learning_curves.PAPER_RELATIVE_DATA_SCALING}% higher than the Transformer++'s (Fig. 4; 28.5% in "
             "batch size, 3-5% in depth, parameters and FLOPs); at equal compute its loss is still higher.", "",
             f"Ours: the quickstart models (4xs, bytes, bundled Shakespeare, 2048 tokens per step), each budget a "
             f"finished run (warm-up and cosine decay fitted to it), seeds {', '.join(map(str, seeds))}. Final "
             "validation loss (nats per byte), mean over seeds:", "",
             "| tokens | " + " | ".join(scaling["models"]) + " | EBT / T++ FLOPs |",
             "|---|" + "---|" * (len(scaling["models"]) + 1)]
    for i, tokens in enumerate(scaling["models"]["EBT"]["tokens"]):
        flops = {label: [r["flops"] for r in finals if r["model"] == label and r["tokens"] == tokens][0]
                 for label in scaling["models"]}
        losses = " | ".join(f"{fit['mean_loss'][i]:.4f}" for fit in scaling["models"].values())
        lines.append(f"| {tokens:.3g} | {losses} | {flops['EBT'] / flops['Transformer++']:.1f}x |")
    lines += ["", "Fitted power law L = a D^-b (least squares in log-log space):", "",
              "| model | b (seed-mean losses) | b per seed |", "|---|---|---|"]
    lines += [f"| {label} | {fit['b']:.4f} | {', '.join(f'{b:.4f}' for b in fit['b_per_seed'])} |"
              for label, fit in scaling["models"].items()]
    relative, per_seed = scaling["relative_rate_percent"], scaling["relative_rate_percent_per_seed"]
    budgets = scaling["models"]["EBT"]["tokens"]
    if all(r > 0 for r in per_seed):
        verdict = ("agrees in direction: the EBT's scaling rate is higher in every seed "
                   f"({relative:+.1f}% on the seed-mean losses; the paper: "
                   f"+{learning_curves.PAPER_RELATIVE_DATA_SCALING}%)")
    elif all(r < 0 for r in per_seed):
        verdict = (f"disagrees: the EBT's scaling rate is lower in every seed ({relative:+.1f}% on the seed-mean "
                   "losses)")
    else:
        verdict = f"too noisy to tell: the sign of the difference changes between seeds ({relative:+.1f}% mean)"
    ebt_final, tpp_final = (scaling["models"][m]["mean_loss"][-1] for m in ("EBT", "Transformer++"))
    lines += ["", f"Relative scaling rate of the EBT: {relative:+.1f}% (per seed: "
              f"{', '.join(f'{r:+.1f}%' for r in per_seed)}).", "",
              f"Verdict: {verdict}. At the largest budget the EBT is "
              f"{'behind' if ebt_final > tpp_final else 'ahead'} ({ebt_final:.4f} vs {tpp_final:.4f}) while "
              "spending several times the FLOPs, as the paper also finds at equal compute. Caveats: budgets of "
              f"{min(budgets) / 1e6:.1f}M-{max(budgets) / 1e6:.1f}M bytes (under one pass over the 5.1M-byte "
              "corpus) and one model size; the EBT starts further from its floor, and a fit over such short runs "
              "rewards that with a steeper slope, so this is a weak test of the claim.",
              "", f"![data scaling]({figure['data_scaling.png']})", "",
              "Learning curves of the largest budget (first seed), against tokens and against estimated FLOPs:", "",
              "| model | optimizer steps | tokens | training FLOPs (estimate) | validation loss |",
              "|---|---|---|---|---|"]
    lines += [f"| {label} | {c[-1][0]} | {c[-1][1]:.3g} | {c[-1][2]:.3g} | {c[-1][3]:.4f} |"
              for label, c in curves.items()]
    lines += ["", f"![learning curves]({figure['learning_curves.png']})", "", f"Command: `{command}`.", ""]
    return lines


def thinking_section(out_dir, figure, command):
    data = load(out_dir, "thinking", "thinking.json")
    paper = data["paper"]
    seeds = sorted({r["seed"] for r in data["results"]})
    lines = ["## Thinking: System 2 at test time", "",
             f"Paper: thinking longer and self-verifying (best-of-N by energy) lowers an S2-trained EBT's perplexity "
             f"by up to {paper['improvement_percent']}% (xxs, 1M steps), more out of distribution; a Transformer++ "
             f"cannot think. Ablation on BIG-bench Dyck: longer {paper['dyck_longer_percent']}%, longer + "
             f"self-verification {paper['dyck_longer_verified_percent']}%; without random step sizes in training "
             "the gain vanishes.", "",
             f"Ours: `job_scripts/nlp/pretrain/ebt_s2_tiny_cpu.sh` (4xs, bytes, 600 steps on Shakespeare), the same "
             f"without random step size, and a Transformer++ on the same data and schedule; seeds "
             f"{', '.join(map(str, seeds))}. Token-weighted perplexity of validation rows; System 1 is 3 steps, one "
             "sample (the recipe's evaluation); System 2 adds steps (to 8) and best of 8 samples by lowest energy "
             "(the trained Langevin noise throughout):", ""]
    datasets = {"shakespeare": "Shakespeare (in distribution)", "bbc_news": "BBC news (OOD)"}
    lines += system2_table_and_verdict(data, datasets, thinking.MODELS, f"up to {paper['improvement_percent']}%")
    return lines + ["", f"![thinking]({figure['thinking.png']})", "", f"Command: `{command}`.", ""]


def dyck_section(out_dir, figure, command):
    data = load(out_dir, "dyck", "dyck.json")
    paper, shape, ood = data["paper"], data["data"]["shape"], data["data"]["ood_shape"]
    seeds = sorted({r["seed"] for r in data["results"]})
    lines = ["## Thinking on Dyck languages: the paper's System 2 ablation", "",
             f"Paper (BIG-bench Dyck): thinking longer lowers an S2 EBT's perplexity by {paper['dyck_longer_percent']}"
             f"%, longer + self-verification by {paper['dyck_longer_verified_percent']}%; trained without random "
             "step sizes, the gain vanishes.", "",
             f"Ours: rows from `python -m data.nlp.dyck` (BIG-bench dyck_languages schema: a prefix, and the "
             f"brackets that close it; {shape['kinds']} bracket kinds; {data['data']['rows']['train']} training rows "
             f"of words of {shape['min_length']}-{shape['max_length']} brackets, depth <= {shape['max_depth']}; out "
             f"of distribution {ood['min_length']}-{ood['max_length']} brackets, depth {ood['min_depth']}-"
             f"{ood['max_depth']}), `job_scripts/nlp/dyck/{{ebt_s2,baseline_transformer}}_tiny_cpu.sh` (4xs, bytes, "
             f"loss on the closing brackets), the EBT also without random step size; seeds "
             f"{', '.join(map(str, seeds))}. Token-weighted perplexity of the closing brackets of "
             f"{data['data']['rows']['validation']} held-out rows each; System 1 is 3 steps, one sample; System 2 "
             "8 steps and best of 8 by lowest energy:", ""]
    lines += system2_table_and_verdict(data, DYCK_DATASETS, dyck.MODELS,
                                       f"{paper['dyck_longer_verified_percent']}%")
    steps = data["summary"]["EBT (S2) | in_distribution"]["steps"]
    lines += ["", f"Thinking's second step does the work here: in distribution the S2 EBT's perplexity is "
              f"{ppl(steps['1']):.3f} after one step and {ppl(steps['2']):.3f} after two."]
    return lines + ["", f"![dyck]({figure['dyck.png']})", "", f"Command: `{command}`.", ""]


DYCK_DATASETS = {"in_distribution": "held out (in distribution)", "ood": "longer, deeper (OOD)"}


def system2_table_and_verdict(data, datasets, models, paper_gain):
    """The System 1 / System 2 perplexity table of an S2 ablation and its verdict. `datasets`: {key: name}, in
    distribution first, then out of distribution."""
    summary = data["summary"]
    seeds = sorted({r["seed"] for r in data["results"]})
    lines = ["| data | model | System 1 | 8 steps | 8 steps, best of 8 | longer | longer + verified |",
             "|---|---|---|---|---|---|---|"]
    gains = {}
    for dataset, name in datasets.items():
        for label in models:
            stats = summary.get(f"{label} | {dataset}")
            if stats is None:
                continue
            if "loss" in stats:
                lines.append(f"| {name} | {label} | {ppl(stats['loss']):.3f} | - | - | - | - |")
                continue
            gains[label, dataset] = stats["longer_verified_percent"]
            lines.append(f"| {name} | {label} | {ppl(stats['system1_loss']):.3f} | {ppl(stats['steps']['8']):.3f} "
                         f"| {ppl(stats['best_of']['8']):.3f} | {stats['longer_percent']:+.1f}% | "
                         f"{stats['longer_verified_percent']:+.1f}% |")
    lines += ["", "(longer / longer + verified: perplexity lowered by, relative to System 1.)", ""]
    s2, ablation = "EBT (S2)", "EBT (S2, no random step size)"
    threshold = 1.0  # percent: smaller differences are within this experiment's evaluation noise
    (inside, _), (outside, _) = datasets.items()
    parts = []
    for dataset, where in ((inside, "in distribution"), (outside, "out of distribution")):
        gain, without = gains[s2, dataset], gains[ablation, dataset]
        per_seed = summary[f"{s2} | {dataset}"]["longer_verified_percent_per_seed"]
        consistent = all(g > threshold for g in per_seed) or all(g < -threshold for g in per_seed)
        seeds_text = f"per seed {', '.join(f'{g:+.1f}%' for g in per_seed)}"
        if abs(gain) <= threshold or not consistent:
            parts.append(f"{where}, System 2 changes the S2 EBT's perplexity too little or too unevenly to tell "
                         f"({gain:+.1f}%; {seeds_text}; trained without random step sizes: {without:+.1f}%)")
            continue
        if gain < 0:
            parts.append(f"{where}, System 2 makes the S2 EBT worse ({gain:+.1f}%; {seeds_text}): its energy does not "
                         "rank samples well here, unlike the paper")
            continue
        ablated = ("the gain vanishes, as in the paper's ablation" if without < gain - threshold
                   else "the gain remains, unlike the paper's ablation")
        parts.append(f"{where}, System 2 lowers the S2 EBT's perplexity by {gain:.1f}% ({seeds_text}; paper: "
                     f"{paper_gain}); trained without random step sizes ({without:+.1f}%), {ablated}")
    ablated_system1 = summary[f"{ablation} | {inside}"]["system1_loss"]
    s2_best = summary[f"{s2} | {inside}"]["best_of"][str(max(thinking.SAMPLES))]
    if ablated_system1 < s2_best:
        parts.insert(1, f"yet the model trained without random step sizes is better already at System 1 "
                     f"({ppl(ablated_system1):.3f}) than the S2 EBT after thinking ({ppl(s2_best):.3f})")
    ood_more = gains[s2, outside] > gains[s2, inside] + threshold
    parts.append("the gain is " + ("larger out of distribution, as in the paper" if ood_more
                                   else "not larger out of distribution, unlike the paper"))
    transformer = summary[f"Transformer++ | {inside}"]["loss"]
    in_distribution = summary[f"{s2} | {inside}"]
    best_ebt = min(*in_distribution["steps"].values(), *in_distribution["best_of"].values())
    lines += [f"Verdict ({len(seeds)} seed{'s' if len(seeds) > 1 else ''}): " + "; ".join(parts)
              + ". The Transformer++ (one pass, nothing to think with) is the flat reference line; in distribution "
              + (f"it stays ahead of the S2 EBT's best thinking ({ppl(transformer):.3f} vs {ppl(best_ebt):.3f})"
                 if transformer < best_ebt else
                 f"the S2 EBT's best thinking overtakes it ({ppl(best_ebt):.3f} vs {ppl(transformer):.3f})") + "."]
    return lines


def best_of_lines(best_of):
    """System 2 on images: best of N noisy samples by energy against one sample thinking the same steps."""
    lines = ["System 2 self-verification at test time (`--ebt_best_of`): each image thinks from N noisy starts with "
             "Langevin noise and the sample of lowest energy is kept (N x steps forward passes); at the steps where "
             "best of N does best, seed-mean:", "",
             "| noise level | N | steps | forward passes | best of N | one sample, same steps | gain per seed | "
             "gain over all steps |", "|---|---|---|---|---|---|---|---|"]
    for r in best_of.values():
        low, high = r["gain_range_all_steps"]
        lines.append(f"| {r['noise_level']} | {r['samples']} | {r['steps']} | {r['forward_passes']} | "
                     f"{r['psnr']:.2f} | {r['one_sample_psnr']:.2f} | "
                     f"{', '.join(f'{g:+.2f}' for g in r['gain_per_seed'])} dB | {low:+.2f} to {high:+.2f} dB |")
    gains = [g for r in best_of.values() for g in r["gain_per_seed"]]
    if all(g > 0 for g in gains):
        verdict = "picking the lowest-energy sample improves PSNR in every seed, noise level and N"
    elif all(g <= 0 for g in gains):
        verdict = ("picking the lowest-energy sample does not improve PSNR at this scale: the Langevin noise costs "
                   "more than choosing among samples by energy wins back, at the same steps")
    else:
        verdict = "mixed: best of N helps in some seeds or noise levels and not in others"
    return lines + ["", f"Verdict (System 2 on images): {verdict} (mean gain {sum(gains) / len(gains):+.2f} dB). "
                    "The paper's self-verification results are on language; this checks whether the image energy "
                    "ranks its own samples well.", ""]


def denoising_section(out_dir, figure, command):
    data = load(out_dir, "denoising", "denoising.json")
    summary, paper = data["summary"], data["paper"]
    lines = ["## Image denoising: PSNR against forward passes, EBT against DiT", "",
             f"Paper (Fig. 7): in distribution {paper['0.1']['EBT'][0]} dB (EBT, {paper['0.1']['EBT'][1]} passes) vs "
             f"{paper['0.1']['DiT'][0]} dB (DiT, {paper['0.1']['DiT'][1]}); at unseen higher noise "
             f"{paper['0.2']['EBT'][0]} vs {paper['0.2']['DiT'][0]} dB.", "",
             f"Ours: `job_scripts/img/pretrain_denoising/{{ebt,dit}}_tiny_cpu.sh` (bundled natural-image crops, "
             f"32x32, 4xs, trained at noise 0.1), 256 held-out test crops, seeds {', '.join(map(str, data['seeds']))}"
             "; best PSNR of each model over its settings (EBT 1-4 steps; DiT DDIM from t, recursed 0-2 times), "
             "seed-mean:", "",
             "| noise level | noisy input | EBT | EBT passes | DiT | DiT passes | EBT - DiT per seed |",
             "|---|---|---|---|---|---|---|"]
    agree = []
    for level, name in (("0.1", "0.1 (trained)"), ("0.2", "0.2 (unseen)")):
        s = summary[level]
        margins = s["ebt_margin_per_seed"]
        agree.append(all(m > 0 for m in margins))
        lines.append(f"| {name} | {s['noisy_psnr']:.2f} | {s['psnr']['EBT']:.2f} | "
                     f"{'/'.join(map(str, s['forward_passes']['EBT']))} | {s['psnr']['DiT']:.2f} | "
                     f"{'/'.join(map(str, s['forward_passes']['DiT']))} | "
                     f"{', '.join(f'{m:+.2f}' for m in margins)} dB |")
    passes = lambda label: sorted({p for level in summary.values() for p in level["forward_passes"][label]})
    span = lambda label: f"{passes(label)[0]}-{passes(label)[-1]}" if len(passes(label)) > 1 else str(passes(label)[0])
    verdict = {(True, True): f"agrees: the EBT denoises better than the DiT, with {span('EBT')} forward passes "
                             f"against the DiT's {span('DiT')}, in "
                             "distribution and at the unseen noise level, in every seed",
               (True, False): "agrees in distribution only; at the unseen noise level the EBT is not better in every "
                              "seed",
               (False, True): "agrees at the unseen noise level only; in distribution the DiT matches or beats it in "
                              "some seed",
               (False, False): "disagrees: the EBT is not better than the DiT in every seed"}[tuple(agree)]
    lines += ["", f"Verdict: {verdict} (absolute PSNRs are lower than the paper's: 32x32 crops, minutes of "
              "CPU training).", ""]
    if data.get("best_of_summary"):
        lines += best_of_lines(data["best_of_summary"])
    lines += [f"![psnr vs forward passes]({figure['psnr_vs_forward_passes.png']})", "",
              f"Every setting of the first seed: [{figure['psnr_vs_forward_passes.md']}]"
              f"({figure['psnr_vs_forward_passes.md']}).", "",
              f"Command: `{command}`.", ""]
    return lines


def video_section(out_dir, figure, command):
    data = load(out_dir, "video", "video.json")
    summary, frames = data["summary"], data["frames"]
    seeds = sorted({r["seed"] for r in data["results"]})
    lines = ["## Video: next-frame prediction, EBT against Transformer++", "",
             "Paper: on Something-Something v2 in SD-VAE latents the EBT's loss scales faster and is lower than "
             "the Transformer++'s at the larger sizes.", "",
             f"Ours: `job_scripts/vid/pretrain/{{ebt,baseline_transformer}}_tiny_cpu.sh` (Moving MNIST from the "
             f"bundled digits, 16 frames, pooled pixels as features, 4xs, 2000 steps), seeds "
             f"{', '.join(map(str, seeds))}; validation SmoothL1 of the next frame (teacher forced), and rollouts "
             f"(frames 0-{frames[0] - 1} real, {frames[0]}-{frames[-1]} predicted) scored by MSE per frame:", "",
             f"| model | validation SmoothL1 | MSE frame {frames[0]} | frame {frames[len(frames) // 2]} | "
             f"frame {frames[-1]} |", "|---|---|---|---|---|"]
    for label, s in summary.items():
        valid = f"{s['valid_loss']:.4f}" if s["valid_loss"] is not None else "-"
        mse = s["rollout_mse"]
        lines.append(f"| {label} | {valid} | {mse[0]:.4g} | {mse[len(mse) // 2]:.4g} | {mse[-1]:.4g} |")
    ebt, tpp = summary["EBT"], summary["Transformer++"]
    copy = summary["repeat the last real frame"]["rollout_mse"]
    better = ebt["valid_loss"] < tpp["valid_loss"]
    versus_copy = ebt["rollout_mse"][0] / copy[0]  # first predicted frame, relative to repeating the last real one
    copying = ("about as good as repeating the last real frame, i.e. it learned little beyond copying"
               if 0.9 <= versus_copy <= 1.1 else "better than repeating the last real frame" if versus_copy < 1
               else "worse than repeating the last real frame")
    diverged = [f for f, mse in zip(frames, ebt["rollout_mse"]) if mse > 10 * max(copy)]
    lines += ["", "Verdict: " + (
        f"agrees: the EBT's next-frame loss is lower ({ebt['valid_loss']:.4f} vs {tpp['valid_loss']:.4f})" if better
        else f"negative result at this scale: the Transformer++'s next-frame loss is lower ({tpp['valid_loss']:.4f} "
             f"vs the EBT's {ebt['valid_loss']:.4f})") + f". The EBT's first predicted frame is {copying} "
        f"(MSE {ebt['rollout_mse'][0]:.4g} vs {copy[0]:.4g}; the Transformer++: {tpp['rollout_mse'][0]:.4g})"
        + (f", and its rollout diverges from frame {diverged[0]} on" if diverged else "") + ". The paper's "
        "advantage appears at far larger scale and data; this run checks the pipeline and reports the toy-scale "
        "direction.", "",
        f"![video rollouts]({figure['video.png']})", "", f"Command: `{command}`.", ""]
    return lines


def thinking_sweep_section(out_dir, figure, command):
    data = load(out_dir, "thinking_sweep", "thinking_sweep.json")
    lines = ["## Is thinking doing anything here? One knob at a time", "",
             "Two results left that open: the EBT of our first video recipe predicted next frames about as well as "
             "repeating the last real frame (and its rollouts diverged), and the quickstart's second thinking step "
             "gained almost nothing. Each setting below changes one option of a recipe (the flags appended to it) "
             "and trains once (seed 33).", ""]
    if "video" in data:
        video = data["video"]
        first = f" {video['base_flags']}" if video.get("base_flags") else ""
        lines += [f"Video (`bash {video['recipe']}{first}`, our first recipe, then each setting's flags; "
                  "trained for the steps in the command below): validation SmoothL1 of the next frame (teacher "
                  "forced) against repeating the current frame on the same clips:", "", "| setting | flags | validation SmoothL1 | repeat the frame | ratio |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['setting']} | `{r['flags'] or '-'}` | {r['valid_loss']:.4g} | {r['copy_loss']:.4g} | "
                  f"{r['versus_copy']:.3f} |" for r in video["rows"]]
        best = min(video["rows"], key=lambda r: r["versus_copy"])
        recipe = video["rows"][0]
        lines += ["", "Verdict (video): " + (
            f"{best['setting']} reaches {best['versus_copy']:.2f} of the copying loss (the first recipe: "
            f"{recipe['versus_copy']:.2f}), a clear win over repeating the frame"
            if best["versus_copy"] < thinking_sweep.CLEAR_WIN else
            f"no single knob beats repeating the frame clearly (best: {best['setting']}, "
            f"{best['versus_copy']:.2f} of the copying loss; the first recipe: {recipe['versus_copy']:.2f})")
            + ".", "",
                  f"![video sweep]({figure['video.png']})", "", f"Command: `{video['command']}`.", ""]
    if "quickstart" in data:
        quick = data["quickstart"]
        steps = sorted({int(k) for r in quick["rows"] for k in r["step_losses"]})
        lines += [f"Quickstart (`{quick['recipe']}`, 1000 steps): validation loss (nats per byte) after each "
                  "thinking step:", "",
                  "| setting | flags | " + " | ".join(f"step {k}" for k in steps) + " | second-step gain |",
                  "|---|---|" + "---|" * len(steps) + "---|"]
        for r in quick["rows"]:
            cells = [f"{r['step_losses'][str(k)]:.4f}" if str(k) in r["step_losses"] else "-" for k in steps]
            lines.append(f"| {r['setting']} | `{r['flags'] or '-'}` | " + " | ".join(cells)
                         + f" | {r['second_step_gain']:+.4f} |")
        best = max(quick["rows"], key=lambda r: r["second_step_gain"])
        lines += ["", "Verdict (quickstart): " + (
            f"{best['setting']} makes the second step matter ({best['second_step_gain']:+.4f} nats; the recipe: "
            f"{quick['rows'][0]['second_step_gain']:+.4f})" if best["second_step_gain"] >= thinking_sweep.MATTERS
            else f"no setting makes the second step gain {thinking_sweep.MATTERS} nats (best: {best['setting']}, "
                 f"{best['second_step_gain']:+.4f}): on this corpus at this scale one step does the work; on Dyck "
                 "(above) the second step matters") + ".", "",
                  f"![quickstart sweep]({figure['quickstart.png']})", "", f"Command: `{quick['command']}`.", ""]
    return lines


TITLES = {"cost_ratio": "## Cost of a training step", "learning_curves": "## Learning:",
          "thinking": "## Thinking: System 2", "dyck": "## Thinking on Dyck", "denoising": "## Image denoising",
          "video": "## Video:", "thinking_sweep": "## Is thinking doing anything"}  # how each section's heading starts (an earlier summary's sections are found by them)
SECTIONS = [("cost_ratio", cost_ratio_section, ["cost_ratio.png"]),
            ("learning_curves", learning_section, ["data_scaling.png", "learning_curves.png"]),
            ("thinking", thinking_section, ["thinking.png"]),
            ("dyck", dyck_section, ["dyck.png"]),
            ("denoising", denoising_section, ["psnr_vs_forward_passes.png", "psnr_vs_forward_passes.md"]),
            ("video", video_section, ["video.png"]),
            ("thinking_sweep", thinking_sweep_section, ["video.png", "quickstart.png"])]


RESULT_FILES = {"learning_curves": "data_scaling.json"}  # whose presence says an experiment ran (else <name>.json)


def figure_name(name, file):
    """Where a figure is linked from the summary; the sweeps' plots share names with the experiments'."""
    return f"figures/{'thinking_sweep_' if name == 'thinking_sweep' else ''}{file}"


def figure_source(out_dir, name, file):
    """Where an experiment left a figure (the denoising comparison: in its first seed's folder)."""
    if name == "denoising":
        first_seed = os.path.dirname(load(out_dir, "denoising", "denoising.json")["plot"])
        return os.path.join(out_dir, name, first_seed, file)
    return os.path.join(out_dir, name, file)


def previous_sections(results_md):
    """{experiment: its section's lines} of an earlier summary, found by the section titles (TITLES)."""
    if not os.path.isfile(results_md):
        return {}
    with open(results_md) as f:
        text = f.read()
    sections = {}
    for chunk in text.split("\n## ")[1:]:
        chunk = "## " + chunk
        name = next((n for n, title in TITLES.items() if chunk.startswith(title)), None)
        if name:
            sections[name] = chunk.rstrip("\n").split("\n") + [""]
    return sections


def summarize(out_dir, results_md, smoke):
    """Write the summary from the results under out_dir. An experiment without results there keeps its section of
    the summary already at results_md (its figures are still beside it), named as kept; else it is listed as not run
    yet."""
    figures = os.path.join(os.path.dirname(os.path.abspath(results_md)), "figures")
    os.makedirs(figures, exist_ok=True)
    flag = " --smoke" if smoke else ""
    previous = {} if smoke else previous_sections(results_md)
    body, missing, kept = [], [], []
    for name, section, files in SECTIONS:
        if load(out_dir, name, RESULT_FILES.get(name, f"{name}.json")) is None:
            if name in previous:
                kept.append(name)
                body += previous[name]
            else:
                missing.append(name)
            continue
        figure = {}
        for file in files:
            if os.path.isfile(figure_source(out_dir, name, file)):  # a sweep run alone has one of its plots
                figure[file] = figure_name(name, file)
                shutil.copy(figure_source(out_dir, name, file), os.path.join(figures, os.path.basename(figure[file])))
        body += section(out_dir, figure, f"python experiments/{name}.py{flag}")
    lines = ["# Reproducing the paper's claims at small scale", "",
             "Generated by `python experiments/run_all.py`" + (" --smoke (tiny settings: not results)" if smoke
                                                               else "")
             + f"; raw numbers in `{out_dir}/`. Every experiment runs on 2 CPU cores from the bundled data."
             + (f" Kept from the previous summary (not rerun this time): {', '.join(kept)}." if kept else ""), "",
             *body]
    if missing:
        lines += ["## Not run", "", "No results yet for: " + ", ".join(missing)
                  + f" (run `python experiments/run_all.py --only {' '.join(missing)}`).", ""]
    lines += ["## Not reproduced here", ""] + [f"- {item}" for item in NOT_YET] + [""]
    os.makedirs(os.path.dirname(os.path.abspath(results_md)), exist_ok=True)
    with open(results_md, "w") as f:
        f.write("\n".join(lines))
    print(f"summary: {results_md}")


def main(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny settings: seconds per experiment")
    parser.add_argument("--only", nargs="+", choices=list(EXPERIMENTS), default=None,
                        help="run these experiments only (the summary still covers every result present)")
    parser.add_argument("--summarize_only", action="store_true", help="regenerate the summary from --out_dir")
    parser.add_argument("--out_dir", default="results")
    parser.add_argument("--results_md", default="docs/results.md")
    args = parser.parse_args(argv)
    check(output_path_problem("--out_dir", args.out_dir),
          output_path_problem("--results_md", args.results_md, file=True))
    if not args.summarize_only:
        for name in args.only or EXPERIMENTS:
            print(f"\n=== {name} ===", flush=True)
            smoke = ["--smoke"] if args.smoke else []
            EXPERIMENTS[name].main(smoke + ["--out_dir", os.path.join(args.out_dir, name)])
    summarize(args.out_dir, args.results_md, args.smoke)


if __name__ == "__main__":
    run_entry_point(main)
