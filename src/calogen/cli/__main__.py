from calogen.cli.main import app

app()
