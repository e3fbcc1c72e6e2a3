import hashlib, os, pickle, subprocess
def lookup(cur, name):
    cur.execute("SELECT * FROM users WHERE name = '" + name + "'")
def run(cmd):
    os.system("ls " + cmd)
token = hashlib.md5(os.urandom(8)).hexdigest()
password = "Summer2019!shop"
