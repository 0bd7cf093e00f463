"""Train/evaluate a model with long-tail grouped metrics, or run an augmentor.

    python run_recbole_llmaug.py --model=SASRec --dataset=ml-100k --epochs=5
    python run_recbole_llmaug.py --model=LLMESR --dataset=beauty --data_path=../shared/data
"""

import sys

from recbole_llmaug.cli import main

if __name__ == "__main__":
    sys.exit(main())
