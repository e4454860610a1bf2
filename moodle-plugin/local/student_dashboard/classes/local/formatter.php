<?php
// This file is part of Moodle - http://moodle.org/
//
// Moodle is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.
//
// Moodle is distributed in the hope that it will be useful,
// but WITHOUT ANY WARRANTY; without even the implied warranty of
// MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
// GNU General Public License for more details.
//
// You should have received a copy of the GNU General Public License
// along with Moodle.  If not, see <http://www.gnu.org/licenses/>.

namespace local_student_dashboard\local;

/**
 * Formats money and calendar dates for the current user's language.
 *
 * @package    local_student_dashboard
 * @copyright  2026 zmsync developers
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class formatter {

    /** @var string How currencies are shown: symbol or code. */
    private string $currencyformat;

    /** @var bool Whether PHP's intl (ICU) may be used. */
    private bool $useintl;

    /** @var string[] The symbols looked up so far, by currency. */
    private array $symbols = [];

    /**
     * Symbols of common currencies as their own countries write them in English (ICU 72's data for the locale
     * "en_" + the first two letters of the code), used when PHP has no intl. Others are shown by their code.
     */
    public const SYMBOLS = [
        'AUD' => '$', 'BRL' => 'R$', 'CAD' => '$', 'CNY' => 'CN¥', 'DKK' => 'kr.', 'EUR' => '€', 'GBP' => '£',
        'GHS' => 'GH₵', 'HKD' => 'HK$', 'INR' => '₹', 'JPY' => '¥', 'KES' => 'Ksh', 'MXN' => 'MX$', 'MYR' => 'RM',
        'NGN' => '₦', 'NZD' => '$', 'PKR' => 'Rs', 'SEK' => 'kr', 'SGD' => '$', 'USD' => '$', 'ZAR' => 'R',
    ];

    /**
     * Create a formatter.
     *
     * @param string $currencyformat "symbol" (£15,000.00: the currency's own symbol, whatever the user's language)
     *     or "code" (GBP 15,000.00).
     * @param bool $useintl Whether to use PHP's intl when it is installed (tests turn it off).
     */
    public function __construct(string $currencyformat = 'symbol', bool $useintl = true) {
        $this->currencyformat = $currencyformat;
        $this->useintl = $useintl && class_exists('\NumberFormatter');
    }

    /**
     * Format an amount.
     *
     * With "symbol", the currency's own symbol (£ for GBP, € for EUR, $ for USD) in the number format of the
     * user's language: ICU alone would print "GBP 15,000.00" under Moodle's English locale (en_AU), where only
     * the Australian dollar has a symbol.
     *
     * @param int $cents The amount in cents.
     * @param string|null $currency The ISO 4217 code, null when unknown.
     * @return string
     */
    public function money(int $cents, ?string $currency): string {
        $amount = $cents / 100;
        $symbol = ($currency !== null && $this->currencyformat === 'symbol') ? $this->symbol($currency) : null;
        if ($symbol !== null && $this->useintl) {
            $numberformatter = new \NumberFormatter(self::locale(), \NumberFormatter::CURRENCY);
            $numberformatter->setTextAttribute(\NumberFormatter::CURRENCY_CODE, $currency);
            $numberformatter->setSymbol(\NumberFormatter::CURRENCY_SYMBOL, $symbol);
            $formatted = $numberformatter->format($amount);
            if ($formatted !== false) {
                return $formatted;
            }
        }
        $number = number_format(abs($amount), 2, get_string('decsep', 'langconfig'), get_string('thousandssep', 'langconfig'));
        $sign = $cents < 0 ? '-' : '';
        if ($symbol !== null) {
            // As ICU does: a no-break space between a symbol that ends in a letter and the number ("R 15.00").
            return $sign . $symbol . (preg_match('/\p{Sc}$/u', $symbol) ? '' : "\u{00A0}") . $number;
        }
        return $currency === null ? $sign . $number : $currency . ' ' . $sign . $number;
    }

    /**
     * The symbol a currency's own country writes in English, or the code when it has none.
     *
     * @param string $currency The ISO 4217 code.
     * @return string
     */
    public function symbol(string $currency): string {
        if (isset($this->symbols[$currency])) {
            return $this->symbols[$currency];
        }
        $symbol = self::SYMBOLS[$currency] ?? $currency;
        if ($this->useintl && preg_match('/^[A-Z]{3}$/', $currency)) {
            $home = new \NumberFormatter('en_' . substr($currency, 0, 2) . '@currency=' . $currency,
                \NumberFormatter::CURRENCY);
            $icu = $home->getSymbol(\NumberFormatter::CURRENCY_SYMBOL);
            if ($icu !== false && $icu !== '') {
                $symbol = $icu;
            }
        }
        return $this->symbols[$currency] = $symbol;
    }

    /**
     * Format a percentage given in hundredths ("20%", "12.5%").
     *
     * @param int $hundredths The percentage in hundredths of a percent.
     * @return string
     */
    public function percent(int $hundredths): string {
        $decimals = $hundredths % 100 === 0 ? 0 : ($hundredths % 10 === 0 ? 1 : 2);
        return format_float($hundredths / 100, $decimals, true) . '%';
    }

    /**
     * Format a calendar date (YYYY-MM-DD) in the user's language, without any time zone shift.
     *
     * @param string|null $date The date.
     * @return string The formatted date, or an empty string when there is none.
     */
    public function date(?string $date): string {
        if ($date === null || !row_validator::is_date($date)) {
            return '';
        }
        [$year, $month, $day] = array_map('intval', explode('-', $date));
        return userdate(gmmktime(12, 0, 0, $month, $day, $year), get_string('strftimedate', 'langconfig'), 'UTC');
    }

    /**
     * The ICU locale of the current language, e.g. "en_AU" from "en_AU.UTF-8".
     *
     * @return string
     */
    private static function locale(): string {
        $locale = get_string('locale', 'langconfig');
        return preg_replace('/[.@].*$/', '', $locale) ?: 'en';
    }
}
