"""`e2wm plan-memory`: expected training memory per component, from the model's config (no weights loaded)."""

from e2wm.errors import InputError
from e2wm.memory import GIB, format_plan, model_shapes, plan_memory
from e2wm.models import EMBEDDED_NAME, resolve_model_path


def add_arguments(parser) -> None:
    parser.add_argument("--model", default=EMBEDDED_NAME, help="Hub id, local directory or the embedded name")
    parser.add_argument("--method", default="ewc-lora", choices=["ewc-lora", "lora", "full"])
    parser.add_argument("--batch-size", type=int, default=1, help="examples per micro-batch")
    parser.add_argument("--max-len", type=int, default=800)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--load-in-8bit", action="store_true")
    parser.add_argument("--load-in-4bit", action="store_true")
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--modules", help="adapted modules (default: PEFT's for the architecture)")
    parser.add_argument("--no-ewc", action="store_true", help="full finetuning without the EWC penalty")
    parser.add_argument("--attention", default="fused", choices=["fused", "eager"],
                        help="fused (flash/memory-efficient SDPA on GPUs) or eager (keeps len^2 scores; CPU too)")


def run(args) -> None:
    from transformers import AutoConfig

    from e2wm.train.targets import parse_modules

    if args.load_in_8bit and args.load_in_4bit:
        raise InputError("--load-in-8bit and --load-in-4bit exclude each other")
    for key in ("batch_size", "max_len", "lora_r"):
        if getattr(args, key) < 1:
            raise InputError(f"--{key.replace('_', '-')} must be at least 1")
    try:
        config = AutoConfig.from_pretrained(resolve_model_path(args.model))
    except OSError as error:
        raise InputError(f"--model {args.model}: cannot read its config ({str(error).splitlines()[0]})") from None
    shapes = model_shapes(config, parse_modules(args.modules))
    if not shapes.targets:
        raise InputError(f"--modules {args.modules}: no Linear/Conv1D module of the model has these names")
    quant = "8bit" if args.load_in_8bit else "4bit" if args.load_in_4bit else None
    plan = plan_memory(shapes, args.method, args.batch_size, args.max_len, args.dtype, quant, args.lora_r,
                       ewc=not args.no_ewc, attention=args.attention)
    title = (f"{args.model}: {args.method}, batch {args.batch_size} x {args.max_len} tokens, {args.dtype}"
             f"{', ' + quant if quant else ''}; {shapes.params / 1e6:.1f}M parameters, "
             f"{len(shapes.targets)} adapted matrices")
    print(format_plan(plan, title))
    print(f"expected peak: {plan.total(False) / GIB:.2f} GiB, {plan.total(True) / GIB:.2f} GiB with checkpointing")

