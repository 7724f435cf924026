"""`brain-tumor`, the one command users type: the top of the house. It may import everything below it (`pipelines`,
`steps`, `brain_tumor`); nothing below imports it."""
