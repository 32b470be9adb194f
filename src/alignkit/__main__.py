"""`python -m alignkit ...`: the same CLI as the `alignkit` script, so launchers that run a module work too:

    python -m alignkit train dpo
    torchrun --standalone --nproc_per_node 2 -m alignkit train dpo --batch-size 4
    accelerate launch -m alignkit train dpo --batch-size 4
"""
from alignkit.cli import main

if __name__ == "__main__":
    main()
