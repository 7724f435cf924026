"""The pipeline DAG (declared once in `dag.py`) and its runners."""
