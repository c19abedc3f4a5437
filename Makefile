# One target per task; people and CI call the same scripts.
.PHONY: install serve test e2e lint docs

install:
	bash scripts/install.sh

serve:
	bash scripts/serve.sh

test:
	bash scripts/test.sh

# Every app recipe end to end in Chromium, including those CI leaves out.
e2e:
	bash scripts/install.sh --test
	.venv/bin/python -m pytest tests/apps --all-apps

lint:
	.venv/bin/ruff check src tests bench

docs:
	.venv/bin/sandhaven config docs > docs/administering/settings.md
