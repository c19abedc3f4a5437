# One target per task; people and CI call the same scripts.
.PHONY: install serve test lint docs

install:
	bash scripts/install.sh

serve:
	bash scripts/serve.sh

test:
	bash scripts/test.sh

lint:
	.venv/bin/ruff check src tests bench

docs:
	.venv/bin/sandhaven config docs > docs/administering/settings.md
