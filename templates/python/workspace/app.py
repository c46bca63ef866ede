# The python template's starter: a Flask app (Flask comes from Debian). `python app.py`
# serves it on $PORT (8000 when unset); a published release runs it under gunicorn on $PORT.
import os

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "Hello from miosa (python)\n", 200, {"content-type": "text/plain; charset=utf-8"}


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8000")))
